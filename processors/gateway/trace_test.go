package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pcistream/pcistream/processors/gateway"
)

// TestOTLPTracesCarryTheContextID exports the gateway's spans over OTLP/HTTP
// to a local collector stand-in: the context id is there, card data is not.
func TestOTLPTracesCarryTheContextID(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	coll := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer coll.Close()
	tr, shutdown, err := gateway.NewOTLPTracer(context.Background(), strings.TrimPrefix(coll.URL, "http://"), true, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, gateway.Tracer(tr))
	r := e.post("/v1/payments", paymentJSON("p-trace", testCards[0]))
	var a acceptedBody
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &a) != nil {
		t.Fatalf("payment: %d %s", r.status, redact(r.body))
	}
	e.post("/v1/payments", paymentJSON("p-trace-bad", "4111111111111112"))
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flushing spans: %v", err)
	}
	mu.Lock()
	all := bytes.Join(got, nil)
	mu.Unlock()
	if !bytes.Contains(all, []byte(a.ContextID)) || !bytes.Contains(all, []byte("pcistream.context_id")) {
		t.Fatalf("no span with the context id reached the collector (%d export requests)", len(got))
	}
	for _, c := range append(testCards, "4111111111111112") {
		if bytes.Contains(all, []byte(c)) {
			t.Fatalf("an exported span holds a PAN")
		}
	}
	if digitRun(all, testCVV) {
		t.Fatalf("an exported span holds the CVV")
	}
}
