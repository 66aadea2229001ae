package scan

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pcistream/pcistream/internal/pan"
)

// pgTable is one relation to scan and assess.
type pgTable struct {
	oid        uint32
	schema     string
	name       string
	kind       string // pg_class.relkind: r, p, m
	rls        bool   // pg_class.relrowsecurity
	isPart     bool   // a partition: its parent is assessed for posture
	parent     uint32 // the partitioned parent of a partition
	found      int    // PAN findings in this table (and, for a parent, its partitions)
	cols       []pgColumn
	pk         []string
	namedLikeP bool
}

type pgColumn struct {
	name string
	typ  string // base type name (domains resolved)
	cast bool   // read as col::text (xml, citext, arrays)
}

// directTypes are read as their raw wire bytes (text for text-like and JSON
// types, the raw bytes for bytea) so a PAN stored as bytes is seen too.
var directTypes = map[string]bool{"text": true, "varchar": true, "bpchar": true, "json": true, "jsonb": true, "bytea": true}

// castTypes are other text-like types read through ::text.
var castTypes = map[string]bool{"xml": true, "citext": true}

// paymentName matches table and column names that suggest cardholder data.
var paymentName = regexp.MustCompile(`(?i)(card|payment|cardholder|(^|_)pans?($|_)|(^|_)cc($|_)|^cc_|(^|_)ccn($|_)|creditcard)`)

const pgCatalogQuery = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relrowsecurity, c.relispartition,
       COALESCE((SELECT inhparent FROM pg_inherits WHERE inhrelid = c.oid AND c.relispartition LIMIT 1), 0),
       a.attname, COALESCE(bt.typname, t.typname), COALESCE(et.typname, ''),
       COALESCE((SELECT array_agg(pa.attname ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute pa ON pa.attrelid = i.indrelid AND pa.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  LEFT JOIN pg_type et ON et.oid = COALESCE(bt.typelem, t.typelem) AND COALESCE(bt.typcategory, t.typcategory) = 'A'
 WHERE c.relkind IN ('r', 'p', 'm')
   AND n.nspname <> ALL($1::text[])
   AND (cardinality($2::text[]) = 0 OR n.nspname = ANY($2::text[]))
   AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
 ORDER BY n.nspname, c.relname, a.attnum`

// scanPostgres scans every text-like column of every table and materialized
// view outside the excluded schemas, then reports tables that hold PANs or
// are named like payment tables but have row-level security disabled.
func (r *run) scanPostgres(ctx context.Context, t Target) error {
	pcfg, err := pgx.ParseConfig(t.DSN)
	if err != nil {
		return fmt.Errorf("invalid PostgreSQL URL (check its syntax and quoting): %w", pgErr(err))
	}
	if _, ok := pcfg.RuntimeParams["application_name"]; !ok {
		pcfg.RuntimeParams["application_name"] = "pcistream-scan" // visible to DBAs in pg_stat_activity
	}
	cctx, cancel := context.WithTimeout(ctx, r.s.cfg.dialTimeout)
	conn, err := pgx.ConnectConfig(cctx, pcfg)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL (check the URL, that the server is running and the user may log in): %w", pgErr(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The scanner only reads: make the session read-only so it cannot write
	// even by mistake, and do not queue behind a lock held by a migration.
	for _, q := range []string{
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
		"SET lock_timeout = '10s'",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("preparing the session (%s): %w", q, pgErr(err))
		}
	}
	db := conn.Config().Database

	tables, err := r.pgTables(ctx, conn)
	if err != nil {
		return err
	}
	byOID := make(map[uint32]*pgTable, len(tables))
	for _, tb := range tables {
		byOID[tb.oid] = tb
	}
	// A table that cannot be read does not stop the others, but the target
	// fails at the end: an incomplete scan must not pass as clean.
	var skipped []string
	for _, tb := range tables {
		if tb.kind == "p" || len(tb.cols) == 0 {
			continue // a partitioned parent holds no rows: its partitions are scanned
		}
		n, err := r.scanTable(ctx, conn, t, db, tb)
		if err != nil {
			var pe *pgconn.PgError
			name := r.s.mask(tb.schema + "." + tb.name)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &pe) && pe.Code == "42501": // insufficient_privilege
				skipped = append(skipped, name+" (permission denied: grant SELECT to the scanning role)")
				continue
			case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available
				skipped = append(skipped, name+" (locked by another session for over 10s: re-run)")
				continue
			}
			return fmt.Errorf("scanning table %s: %w", name, pgErr(err))
		}
		tb.found += n
		if p := byOID[tb.parent]; tb.isPart && p != nil {
			p.found += n
		}
	}
	// Posture once every table is scanned: a partitioned parent is judged
	// with its partitions' findings, a partition through its parent (queries
	// through the parent apply the parent's policies).
	for _, tb := range tables {
		if !tb.isPart || byOID[tb.parent] == nil {
			r.posture(t, db, tb, tb.found)
		}
	}
	if len(skipped) > 0 {
		const show = 3
		more := ""
		if len(skipped) > show {
			more = fmt.Sprintf(" and %d more", len(skipped)-show)
			skipped = skipped[:show]
		}
		return fmt.Errorf("%s%s not scanned; fix access or leave the schema out with --pg-exclude-schema", strings.Join(skipped, ", "), more)
	}
	return nil
}

func (r *run) pgTables(ctx context.Context, conn *pgx.Conn) ([]*pgTable, error) {
	rows, err := conn.Query(ctx, pgCatalogQuery,
		append([]string{}, r.s.cfg.excludeSchemas...), // never NULL: "<> ALL(NULL)" matches nothing
		append([]string{}, r.s.cfg.includeSchemas...))
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", pgErr(err))
	}
	defer rows.Close()
	var tables []*pgTable
	var cur *pgTable
	for rows.Next() {
		var (
			oid                uint32
			schema, name, kind string
			rls, isPart        bool
			parent             uint32
			col, typ, elem     *string
			pk                 []string
		)
		if err := rows.Scan(&oid, &schema, &name, &kind, &rls, &isPart, &parent, &col, &typ, &elem, &pk); err != nil {
			return nil, fmt.Errorf("listing tables: %w", pgErr(err))
		}
		if cur == nil || cur.oid != oid {
			cur = &pgTable{oid: oid, schema: schema, name: name, kind: kind, rls: rls, isPart: isPart, parent: parent, pk: pk,
				namedLikeP: paymentName.MatchString(name)}
			tables = append(tables, cur)
		}
		if col == nil || typ == nil {
			continue
		}
		c := pgColumn{name: *col, typ: *typ}
		switch {
		case directTypes[c.typ]:
		case castTypes[c.typ]:
			c.cast = true
		case elem != nil && *elem != "" && *elem != "bytea" && (directTypes[*elem] || castTypes[*elem]):
			c.cast = true
		default:
			continue
		}
		cur.cols = append(cur.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tables: %w", pgErr(err))
	}
	return tables, nil
}

// scanTable streams the table's text-like columns and returns the number of
// PAN findings (including suppressed ones, for the posture check).
func (r *run) scanTable(ctx context.Context, conn *pgx.Conn, t Target, db string, tb *pgTable) (int, error) {
	sel := make([]string, 0, 1+len(tb.pk)+len(tb.cols))
	if len(tb.pk) > 0 {
		for _, k := range tb.pk {
			sel = append(sel, pgx.Identifier{k}.Sanitize()+"::text")
		}
	} else {
		sel = append(sel, "ctid::text")
	}
	nid := len(sel)
	for _, c := range tb.cols {
		e := pgx.Identifier{c.name}.Sanitize()
		if c.cast {
			e += "::text"
		}
		sel = append(sel, e)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM "
	if tb.kind == "r" {
		q += "ONLY " // inheritance children are scanned on their own
	}
	q += pgx.Identifier{tb.schema, tb.name}.Sanitize()
	if r.s.cfg.rowLimit > 0 {
		q += " LIMIT " + strconv.FormatInt(r.s.cfg.rowLimit, 10)
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	schema, table := r.s.mask(tb.schema), r.s.mask(tb.name)
	det := r.s.det
	var (
		ms    []pan.Match
		unit  unitMatches
		found int
		buf   []byte
	)
	for rows.Next() {
		vals := rows.RawValues()
		r.items.Add(1)
		var rowID string
		for i, c := range tb.cols {
			v := vals[nid+i]
			if v == nil {
				continue
			}
			r.bytes.Add(int64(len(v)))
			if c.typ == "bytea" && !c.cast && fds[nid+i].Format == pgx.TextFormatCode && len(v) > 2 && v[0] == '\\' && v[1] == 'x' {
				buf = buf[:0]
				if d, err := hex.AppendDecode(buf, v[2:]); err == nil {
					buf, v = d, d
				}
			}
			ms = det.Find(ms[:0], v)
			if len(ms) == 0 {
				continue
			}
			if rowID == "" {
				rowID = r.s.mask(pgRowID(tb, vals[:nid]))
			}
			column := r.s.mask(c.name)
			unit.reset()
			for _, m := range ms {
				found++
				loc := fmt.Sprintf("%s.%s.%s (%s)", schema, table, column, rowID)
				r.emit(Finding{
					Kind:     KindPAN,
					Source:   SourcePostgres,
					Target:   t.String(),
					Location: loc,
					Postgres: &PostgresLocation{Database: db, Schema: schema, Table: table, Column: column, RowID: rowID},
					Network:  m.Network.String(),
					Last4:    string(m.Last4[:]),
					Encoding: m.Encoding.String(),
					Digits:   m.Digits,
					Message:  panMessage(m, loc),
				}, "postgres:"+db+"/"+loc, unit.occurrence(m))
			}
		}
	}
	return found, rows.Err()
}

func pgRowID(tb *pgTable, ids [][]byte) string {
	if len(tb.pk) == 0 {
		return "ctid=" + string(ids[0])
	}
	parts := make([]string, len(tb.pk))
	for i, k := range tb.pk {
		v := "NULL"
		if ids[i] != nil {
			v = string(ids[i])
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, ",")
}

// posture reports a table with RLS disabled that holds PANs or looks like a
// payment table (by its name or its columns' names).
func (r *run) posture(t Target, db string, tb *pgTable, found int) {
	if tb.rls || tb.kind == "m" {
		return
	}
	var why []string
	if found > 0 {
		why = append(why, fmt.Sprintf("holds %d PAN(s)", found))
	}
	if tb.namedLikeP {
		why = append(why, "is named like a payment table")
	}
	for _, c := range tb.cols {
		if paymentName.MatchString(c.name) {
			why = append(why, fmt.Sprintf("has column %q named like card data", r.s.mask(c.name)))
			break
		}
	}
	if len(why) == 0 {
		return
	}
	schema, table := r.s.mask(tb.schema), r.s.mask(tb.name)
	loc := schema + "." + table
	r.emit(Finding{
		Kind:     KindRLSDisabled,
		Source:   SourcePostgres,
		Target:   t.String(),
		Location: loc,
		Postgres: &PostgresLocation{Database: db, Schema: schema, Table: table},
		Message: fmt.Sprintf("table %s %s but row-level security is disabled (ALTER TABLE %s ENABLE ROW LEVEL SECURITY and add policies)",
			loc, strings.Join(why, " and "), pgx.Identifier{tb.schema, tb.name}.Sanitize()),
	}, "postgres:"+db+"/"+loc, 0)
}

// pgErr keeps a PostgreSQL error to its message and code: its Detail field
// may quote row data.
func pgErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}
