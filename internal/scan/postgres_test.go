package scan_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/scan"
)

// pgConn connects to DATABASE_URL or skips the test.
func pgConn(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Skip("DATABASE_URL not set: skipping PostgreSQL integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect DATABASE_URL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, url
}

// pgSchema creates a uniquely named schema dropped when the test ends.
func pgSchema(t *testing.T, conn *pgx.Conn, base string) string {
	t.Helper()
	name := "scantest_" + base + "_" + uniq()
	exec(t, conn, "CREATE SCHEMA "+name)
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
	})
	return name
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		// Mask before printing: the SQL or the server's message may quote a
		// planted PAN.
		msg, _ := det.MaskString(fmt.Sprintf("%s: %v", sql, err), pan.Last4)
		t.Fatal(msg)
	}
}

func TestPostgres(t *testing.T) {
	conn, url := pgConn(t)
	a := pgSchema(t, conn, "a")
	b := pgSchema(t, conn, "b")
	excluded := pgSchema(t, conn, "x")

	p := map[string]string{}
	for _, k := range []string{"text", "varchar", "char", "json", "jsonb", "bytea", "ctid", "comp", "arr", "dom", "mv", "excl", "grouped", "part"} {
		p[k] = visa(t)
	}
	p["varchar"], p["jsonb"] = mc(t), amex(t)

	// Every column type, one PAN per row; row 1 is clean.
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.orders (
		id int PRIMARY KEY, note text, ref varchar(64), code char(24), meta json, doc jsonb, raw bytea, tags text[], amount int)`, a))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, note, ref, code, meta, doc, raw, tags, amount) VALUES
		(1, 'order 1234567890123 shipped 2026-01-02T15:04:05Z', 'ref-98765432109876', 'abc', '{"a":1}', '{"b":[1,2,3]}', '\x00010203', '{x,y}', 100)`, a))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, note) VALUES (2, 'paid with card '||$1)`, a), p["text"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, ref) VALUES (3, $1)`, a), p["varchar"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, code) VALUES (4, $1)`, a), p["char"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, meta) VALUES (5, json_build_object('card', $1::text))`, a), p["json"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, doc) VALUES (6, jsonb_build_object('pan', $1::text, 'n', 7))`, a), p["jsonb"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, raw) VALUES (7, '\x00ff'::bytea || convert_to(' '||$1||' ', 'UTF8'))`, a), p["bytea"])
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, tags) VALUES (8, ARRAY['vip', $1::text])`, a), p["arr"])
	g := p["grouped"]
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.orders (id, note) VALUES (9, $1)`, a), g[:4]+"-"+g[4:8]+"-"+g[8:12]+"-"+g[12:])

	// No primary key: ctid. Composite key. A domain over text. A clean
	// payment-named table with RLS enabled, one with RLS disabled.
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.events (body text)`, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.events VALUES ('clean'), ('leak '||$1)`, b), p["ctid"])
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.lines (order_id int, line_no int, descr varchar, PRIMARY KEY (order_id, line_no))`, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.lines VALUES (10, 1, 'ok'), (10, 2, $1)`, b), p["comp"])
	exec(t, conn, fmt.Sprintf(`CREATE DOMAIN %s.note_t AS text`, b))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.notes (id bigint PRIMARY KEY, n %s.note_t)`, b, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.notes VALUES (1, $1)`, b), p["dom"])
	exec(t, conn, fmt.Sprintf(`CREATE MATERIALIZED VIEW %s.mv AS SELECT $$x$$::text AS label, %s::text AS v`, b, quoteLit(p["mv"])))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.card_tokens (id int PRIMARY KEY, token text)`, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.card_tokens VALUES (1, 'tok_v1_abcdefghijklmnopqrstuvwxyzabcdef')`, b))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.payments_secure (id int PRIMARY KEY, note text)`, b))
	exec(t, conn, fmt.Sprintf(`ALTER TABLE %s.payments_secure ENABLE ROW LEVEL SECURITY`, b))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.clean (id int PRIMARY KEY, note text, doc jsonb, raw bytea)`, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.clean SELECT g, 'row '||g||' phone +1 415 555 2671 order 4111-2222', '{"amount": 1234567890123}', '\xdeadbeef' FROM generate_series(1, 500) g`, b))
	// A partitioned table: rows live in the partition, posture is judged on
	// the parent (with its partitions' findings).
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.payments_part (id int, note text) PARTITION BY RANGE (id)`, b))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.payments_part_1 PARTITION OF %s.payments_part FOR VALUES FROM (0) TO (100)`, b, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.payments_part VALUES (5, $1)`, b), p["part"])
	// A table with no text-like columns.
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.numbers (id int, n bigint)`, b))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.numbers VALUES (1, 4111111111111111)`, b))

	// Excluded schema: a PAN that must not be reported.
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.t (v text)`, excluded))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.t VALUES ($1)`, excluded), p["excl"])

	c, sum, err := scanAll(t, []string{url}, scan.Schemas(a, b, excluded), scan.ExcludeSchemas(excluded))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		a + ".orders.note (id=2)|" + last4(p["text"]),
		a + ".orders.ref (id=3)|" + last4(p["varchar"]),
		a + ".orders.code (id=4)|" + last4(p["char"]),
		a + ".orders.meta (id=5)|" + last4(p["json"]),
		a + ".orders.doc (id=6)|" + last4(p["jsonb"]),
		a + ".orders.raw (id=7)|" + last4(p["bytea"]),
		a + ".orders.tags (id=8)|" + last4(p["arr"]),
		a + ".orders.note (id=9)|" + last4(p["grouped"]),
		b + ".events.body (ctid=(0,2))|" + last4(p["ctid"]),
		b + ".lines.descr (order_id=10,line_no=2)|" + last4(p["comp"]),
		b + ".notes.n (id=1)|" + last4(p["dom"]),
		b + ".mv.v (ctid=(0,1))|" + last4(p["mv"]),
		"rls-disabled:" + a + ".orders",
		"rls-disabled:" + b + ".events",
		"rls-disabled:" + b + ".lines",
		"rls-disabled:" + b + ".notes",
		"rls-disabled:" + b + ".card_tokens",
		b + ".payments_part_1.note (ctid=(0,1))|" + last4(p["part"]),
		"rls-disabled:" + b + ".payments_part",
	}
	assertKeys(t, c.keys(), want)
	for _, f := range c.fs {
		if f.Kind == scan.KindPAN && (f.Postgres == nil || f.Postgres.Database == "" || f.Network == "" || f.Digits < 15) {
			t.Errorf("incomplete finding at %s: %+v", f.Location, f.Postgres)
		}
		if f.Kind == scan.KindRLSDisabled && !strings.Contains(f.Message, "ENABLE ROW LEVEL SECURITY") {
			t.Errorf("posture finding should say how to fix: %q", f.Message)
		}
		if strings.HasSuffix(f.Location, ".card_tokens") && (!strings.Contains(f.Message, "named like a payment table") || strings.Contains(f.Message, "holds")) {
			t.Errorf("card_tokens finding should give only the name as the reason: %q", f.Message)
		}
		if strings.HasSuffix(f.Location, ".payments_part") && !strings.Contains(f.Message, "holds 1 PAN") {
			t.Errorf("partitioned parent should count its partitions' PANs: %q", f.Message)
		}
	}
	// rows: orders 9 + events 2 + lines 2 + notes 1 + mv 1 + card_tokens 1 + payments_secure 0 + clean 500 + part 1
	if sum.Items != 517 {
		t.Errorf("rows scanned = %d, want 517", sum.Items)
	}

	// Row limit: one row per table.
	c, sum, err = scanAll(t, []string{url}, scan.Schemas(a), scan.RowLimit(1))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Items != 1 {
		t.Errorf("row limit 1: scanned %d rows of %s.orders, want 1", sum.Items, a)
	}
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestPostgresErrors(t *testing.T) {
	_, url := pgConn(t)
	// Unreachable server: one line, says what to fix, no password.
	_, _, err := scanAll(t, []string{"postgres://scanner:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"})
	if err == nil {
		t.Fatal("want an error for an unreachable server")
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") || !strings.Contains(msg, "check the URL") {
		t.Errorf("bad error message: %q", msg)
	}
	// A bad database name.
	bad := strings.Replace(url, "/test", "/no_such_db_"+uniq(), 1)
	if bad != url {
		if _, _, err := scanAll(t, []string{bad}); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("want 'does not exist' for a missing database, got %v", err)
		}
	}
}

// TestPostgresLimitedRole scans as a role that may read one table of two:
// the readable table's PAN is reported, the other table fails the target
// (an incomplete scan is not clean), and the session cannot write.
func TestPostgresLimitedRole(t *testing.T) {
	conn, url := pgConn(t)
	a := pgSchema(t, conn, "role")
	role := "scantest_ro_" + uniq()
	exec(t, conn, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP OWNED BY "+role)
		conn.Exec(context.Background(), "DROP ROLE "+role)
	})
	p := visa(t)
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.open (id int PRIMARY KEY, v text)`, a))
	exec(t, conn, fmt.Sprintf(`CREATE TABLE %s.closed (id int PRIMARY KEY, v text)`, a))
	exec(t, conn, fmt.Sprintf(`INSERT INTO %s.open VALUES (1, $1)`, a), p)
	exec(t, conn, fmt.Sprintf(`GRANT USAGE ON SCHEMA %s TO %s`, a, role))
	exec(t, conn, fmt.Sprintf(`GRANT SELECT ON %s.open TO %s`, a, role))

	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	roleURL := strings.Replace(url, "postgres@", role+"@", 1)
	if !strings.Contains(roleURL, role+"@") {
		t.Skipf("cannot derive a URL for a second role from DATABASE_URL")
	}
	rc, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Skipf("cannot log in as a new role without a password here: %v", err)
	}
	rc.Close(context.Background())

	c, _, err := scanAll(t, []string{roleURL}, scan.Schemas(a))
	if err == nil || !strings.Contains(err.Error(), a+".closed (permission denied") {
		t.Errorf("want the unreadable table to fail the target, got %v", err)
	}
	assertKeys(t, c.keys(), []string{a + ".open.v (id=1)|" + last4(p), "rls-disabled:" + a + ".open"})
}
