package devstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// compatRegistry wraps srfake, which accepts every schema as compatible,
// with a real Avro compatibility check (hamba/avro) on registration and on
// the compatibility endpoints, and persists registered schemas to a file so
// a restarted dev stack keeps its schema ids.
type compatRegistry struct {
	fake  *srfake.Registry
	inner http.Handler
	path  string

	mu      sync.Mutex // serialises check-then-register and persistence
	entries []persisted
}

type persisted struct {
	Subject string    `json:"subject"`
	Version int       `json:"version"`
	ID      int       `json:"id"`
	Schema  sr.Schema `json:"schema"`
}

func newCompatRegistry(path string) (*compatRegistry, error) {
	fake := srfake.NewRegistry(srfake.WithGlobalCompat(sr.CompatBackward))
	r := &compatRegistry{fake: fake, inner: fake.Handler(), path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &r.entries); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// Re-register in the original order: the fake assigns the same
		// ids, and shares one id between subjects holding the same
		// schema, exactly as it did the first time.
		for _, e := range r.entries {
			id, version, err := fake.RegisterSchema(e.Subject, e.Schema)
			if err != nil {
				return nil, fmt.Errorf("%s: re-register %s: %w", path, e.Subject, err)
			}
			if id != e.ID || version != e.Version {
				return nil, fmt.Errorf("%s: %s came back as id %d version %d, was id %d version %d; remove the file to start the registry afresh", path, e.Subject, id, version, e.ID, e.Version)
			}
		}
	}
	return r, nil
}

// ServeHTTP implements http.Handler.
func (r *compatRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		r.inner.ServeHTTP(w, req)
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		r.register(w, req, parts[1])
	case len(parts) >= 4 && parts[0] == "compatibility" && parts[1] == "subjects" && parts[3] == "versions":
		version := "all"
		if len(parts) == 5 {
			version = parts[4]
		}
		r.checkEndpoint(w, req, parts[2], version)
	default:
		r.inner.ServeHTTP(w, req)
	}
}

func (r *compatRegistry) register(w http.ResponseWriter, req *http.Request, subject string) {
	body, sch, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if msgs := r.check(subject, sch, "all"); len(msgs) > 0 {
		writeErr(w, http.StatusConflict, 409, fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q, details: %s", subject, strings.Join(msgs, "; ")))
		return
	}
	rec := httptest.NewRecorder()
	fwd := req.Clone(req.Context())
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	fwd.ContentLength = int64(len(body))
	r.inner.ServeHTTP(rec, fwd)
	if rec.Code == http.StatusOK {
		var resp struct{ ID int }
		if json.Unmarshal(rec.Body.Bytes(), &resp) == nil {
			r.persist(subject, resp.ID)
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes()) //nolint:errcheck // client went away
}

func (r *compatRegistry) checkEndpoint(w http.ResponseWriter, req *http.Request, subject, version string) {
	_, sch, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	msgs := r.check(subject, sch, version)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	json.NewEncoder(w).Encode(map[string]any{"is_compatible": len(msgs) == 0, "messages": msgs}) //nolint:errcheck
}

// check returns why sch may not be registered under subject, or nothing.
// version is "all" (what registration checks, per the compatibility level),
// "latest" or a version number.
func (r *compatRegistry) check(subject string, sch sr.Schema, version string) []string {
	if sch.Type != sr.TypeAvro {
		return nil // only Avro is enforced; others pass as in srfake
	}
	next, err := avro.Parse(sch.Schema)
	if err != nil {
		return []string{"invalid Avro schema: " + err.Error()}
	}
	level := r.level(subject)
	versions := r.versions(subject)
	if len(versions) == 0 || level == sr.CompatNone {
		return nil
	}
	var against []int
	switch {
	case version == "latest" || (version == "all" && !transitive(level)):
		against = versions[len(versions)-1:]
	case version == "all":
		against = versions
	default:
		var v int
		if _, err := fmt.Sscan(version, &v); err != nil {
			return []string{"bad version " + version}
		}
		against = []int{v}
	}
	var msgs []string
	for _, v := range against {
		old, ok := r.fake.GetSchema(subject, v)
		if !ok {
			continue
		}
		prev, err := avro.Parse(old.Schema.Schema)
		if err != nil {
			continue
		}
		compat := avro.NewSchemaCompatibility()
		if backward(level) {
			if err := compat.Compatible(next, prev); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d: new schema cannot read data written with it (BACKWARD): %v", v, err))
			}
		}
		if forward(level) {
			if err := compat.Compatible(prev, next); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d: it cannot read data written with the new schema (FORWARD): %v", v, err))
			}
		}
	}
	return msgs
}

func transitive(l sr.CompatibilityLevel) bool {
	return l == sr.CompatBackwardTransitive || l == sr.CompatForwardTransitive || l == sr.CompatFullTransitive
}

func backward(l sr.CompatibilityLevel) bool {
	return l == sr.CompatBackward || l == sr.CompatBackwardTransitive || l == sr.CompatFull || l == sr.CompatFullTransitive
}

func forward(l sr.CompatibilityLevel) bool {
	return l == sr.CompatForward || l == sr.CompatForwardTransitive || l == sr.CompatFull || l == sr.CompatFullTransitive
}

func (r *compatRegistry) level(subject string) sr.CompatibilityLevel {
	var resp struct {
		CompatibilityLevel sr.CompatibilityLevel `json:"compatibilityLevel"`
	}
	if r.get("/config/"+subject, &resp) != nil {
		return sr.CompatBackward
	}
	return resp.CompatibilityLevel
}

func (r *compatRegistry) versions(subject string) []int {
	var vs []int
	if r.get("/subjects/"+subject+"/versions", &vs) != nil {
		return nil
	}
	return vs
}

func (r *compatRegistry) get(path string, into any) error {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("GET %s: %d", path, rec.Code)
	}
	return json.Unmarshal(rec.Body.Bytes(), into)
}

func (r *compatRegistry) persist(subject string, id int) {
	for _, v := range r.versions(subject) {
		ss, ok := r.fake.GetSchema(subject, v)
		if !ok || ss.ID != id {
			continue
		}
		for _, e := range r.entries {
			if e.Subject == subject && e.Version == v {
				return // re-registration of an existing schema
			}
		}
		r.entries = append(r.entries, persisted{Subject: subject, Version: v, ID: id, Schema: ss.Schema})
		b, err := json.MarshalIndent(r.entries, "", "  ")
		if err != nil {
			return
		}
		if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err == nil {
			tmp := r.path + ".tmp"
			if os.WriteFile(tmp, b, 0o644) == nil {
				os.Rename(tmp, r.path) //nolint:errcheck // best effort: dev stack only
			}
		}
		return
	}
}

func readSchema(w http.ResponseWriter, req *http.Request) ([]byte, sr.Schema, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "unreadable request body: "+err.Error())
		return nil, sr.Schema{}, false
	}
	var sch sr.Schema
	if err := json.Unmarshal(body, &sch); err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "invalid schema request: "+err.Error())
		return nil, sr.Schema{}, false
	}
	if _, err := avro.Parse(sch.Schema); sch.Type == sr.TypeAvro && err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "Invalid schema: "+err.Error())
		return nil, sr.Schema{}, false
	}
	return body, sch, true
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg}) //nolint:errcheck
}
