// Package detector benchmarks pcistream's PAN detector (internal/pan)
// against Go regexp and Hyperscan on the same generated log corpus.
//
// Run: see README.md in this directory.
package detector

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/pan/pantest"
)

// RegexpPattern is the widely published PAN pattern the baselines use.
const RegexpPattern = `\b(?:\d[ -]*?){13,16}\b`

// Corpus returns size bytes of log-like text: a mix of logfmt, JSON lines,
// HTTP access logs and Java stack traces, with the digits real logs have
// (ISO timestamps, Unix milliseconds, IPs, ports, UUIDs, latencies, amounts,
// order ids, phone numbers). If panEvery > 0, a generated PAN of a random
// network and print style is inserted about every panEvery bytes; it
// returns how many it inserted. The corpus ends at a line end at or just
// after size bytes and is deterministic for a given seed.
func Corpus(size, panEvery int, seed uint64) ([]byte, int) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b bytes.Buffer
	b.Grow(size + 512)
	// A fixed list, not pan.Networks(): a network added to the detector
	// would otherwise change the corpus and every number measured on it.
	nets := []pan.Network{pan.Visa, pan.Mastercard, pan.Amex, pan.Discover, pan.JCB, pan.Diners,
		pan.UnionPay, pan.Maestro, pan.Mir, pan.RuPay, pan.Troy, pan.Verve}
	styles := []pantest.Style{pantest.Contiguous, pantest.Spaces, pantest.Dashes}
	pans := 0
	nextPAN := panEvery
	for b.Len() < size {
		var p string
		if panEvery > 0 && b.Len() >= nextPAN {
			n := nets[r.IntN(len(nets))]
			ls := pantest.Lengths(n)
			p = pantest.Format(pantest.Generate(r, n, ls[r.IntN(len(ls))]), styles[r.IntN(len(styles))])
			nextPAN += panEvery
			pans++
		}
		line(&b, r, p)
	}
	out := b.Bytes()
	return out, pans
}

var (
	services = []string{"checkout", "ledger", "auth", "gateway", "payouts", "risk", "notifications", "search"}
	levels   = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	paths    = []string{"/v1/charges", "/v1/customers", "/v1/refunds", "/healthz", "/v2/payment_intents", "/api/orders", "/static/app.js"}
	methods  = []string{"GET", "GET", "POST", "PUT", "DELETE"}
	msgs     = []string{"request completed", "cache miss", "retrying upstream call", "payment authorized",
		"connection reset by peer", "slow query", "token refreshed", "webhook delivered", "rate limited"}
	agents = []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
		"curl/8.5.0", "okhttp/4.12.0", "Go-http-client/2.0", "python-requests/2.32.3"}
)

func uuid(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	var u [36]byte
	for i := range u {
		switch i {
		case 8, 13, 18, 23:
			u[i] = '-'
		default:
			u[i] = hex[r.IntN(16)]
		}
	}
	return string(u[:])
}

func ts(r *rand.Rand) string {
	return fmt.Sprintf("2026-11-%02dT%02d:%02d:%02d.%03dZ", 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000))
}

func ip(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d", 10+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254))
}

// line writes one log line; if p != "" the line carries it.
func line(b *bytes.Buffer, r *rand.Rand, p string) {
	card := ""
	if p != "" {
		card = p
	}
	switch r.IntN(10) {
	case 0, 1, 2, 3: // logfmt
		fmt.Fprintf(b, "time=%s level=%s svc=%s msg=%q req_id=%s user_id=%d latency_ms=%d status=%d bytes=%d",
			ts(r), levels[r.IntN(len(levels))], services[r.IntN(len(services))], msgs[r.IntN(len(msgs))],
			uuid(r), 100000+r.IntN(900000), r.IntN(2500), []int{200, 200, 201, 204, 400, 404, 500}[r.IntN(7)], r.IntN(90000))
		if card != "" {
			fmt.Fprintf(b, " card=%s", card)
		}
		b.WriteByte('\n')
	case 4, 5, 6: // JSON lines
		fmt.Fprintf(b, `{"ts":%d,"level":"%s","service":"%s","trace_id":"%s","span_id":"%016x","msg":"%s","order_id":"ord_%d","amount":%d.%02d,"currency":"EUR","customer":{"id":%d,"phone":"+44 20 7946 %04d","ip":"%s"}`,
			1732361330000+r.Int64N(1e9), levels[r.IntN(len(levels))], services[r.IntN(len(services))], uuid(r), r.Uint64(),
			msgs[r.IntN(len(msgs))], 10000000+r.IntN(90000000), r.IntN(5000), r.IntN(100), 1000+r.IntN(9000000), r.IntN(10000), ip(r))
		if card != "" {
			fmt.Fprintf(b, `,"payment_method":{"card":"%s","exp":"%02d/%02d"}`, card, 1+r.IntN(12), 26+r.IntN(8))
		}
		b.WriteString("}\n")
	case 7, 8: // HTTP access log (combined)
		q := ""
		if card != "" {
			q = "?card=" + card
		}
		fmt.Fprintf(b, "%s - - [23/Nov/2026:%02d:%02d:%02d +0000] \"%s %s%s HTTP/1.1\" %d %d \"-\" \"%s\" rt=%d.%03d\n",
			ip(r), r.IntN(24), r.IntN(60), r.IntN(60), methods[r.IntN(len(methods))], paths[r.IntN(len(paths))], q,
			[]int{200, 200, 302, 404, 500}[r.IntN(5)], r.IntN(50000), agents[r.IntN(len(agents))], r.IntN(3), r.IntN(1000))
	case 9: // stack trace
		fmt.Fprintf(b, "%s ERROR [%s] java.lang.IllegalStateException: upstream returned 502 after %dms\n", ts(r), services[r.IntN(len(services))], r.IntN(30000))
		for i := 0; i < 3; i++ {
			fmt.Fprintf(b, "\tat com.example.payments.Service%d.call(Service.java:%d)\n", r.IntN(20), 10+r.IntN(900))
		}
		if card != "" {
			fmt.Fprintf(b, "\tCaused by: declined card %s (version 2.14.3)\n", card)
		}
	}
}

var words = strings.Fields(`the payment request was authorized declined retried after upstream timeout
customer merchant checkout ledger settlement webhook delivered failed connection reset by peer cache miss
token refreshed for session user account balance updated invoice created refund issued dispute opened
warning slow query on table orders index scan completed rate limited backoff scheduled worker started
stopped shutting down gracefully configuration reloaded feature flag enabled disabled queue drained`)

// ProseCorpus returns size bytes of PAN-free, digit-sparse log text: level,
// logger and an English message, with a number only now and then. It shows
// the engines where digits are rare (application logs, stack traces).
func ProseCorpus(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b bytes.Buffer
	b.Grow(size + 512)
	for b.Len() < size {
		fmt.Fprintf(&b, "%s [%s] ", levels[r.IntN(len(levels))], services[r.IntN(len(services))])
		n := 8 + r.IntN(16)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, " (attempt %d)", 1+r.IntN(5))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
