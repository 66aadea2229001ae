package chain

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// memStore is a versioned in-memory Store used to unit-test the pure chain
// logic (the S3 store is tested against versitygw in internal/auditstore).
// Tests reach into it to tamper the way an attacker with bucket access would
// be able to (add versions, delete markers), and with godMode to do what
// Object Lock forbids (rewrite a version), which verify must still catch.
type memStore struct {
	mu       sync.Mutex
	versions map[string][]memVersion // oldest first
	n        int
	clock    time.Time
	fail     error
	// frozen gives every version the same LastModified, as some S3
	// implementations do: nothing may depend on timestamps.
	frozen bool
}

type memVersion struct {
	id     string
	body   []byte
	marker bool
	at     time.Time
}

func newMemStore() *memStore {
	return &memStore{versions: map[string][]memVersion{}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (m *memStore) add(key string, body []byte, marker bool) string {
	m.n++
	if !m.frozen {
		m.clock = m.clock.Add(time.Millisecond)
	}
	id := fmt.Sprintf("v%06d", m.n)
	m.versions[key] = append(m.versions[key], memVersion{id: id, body: append([]byte(nil), body...), marker: marker, at: m.clock})
	return id
}

func (m *memStore) latest(key string) (memVersion, bool) {
	vs := m.versions[key]
	if len(vs) == 0 || vs[len(vs)-1].marker {
		return memVersion{}, false
	}
	return vs[len(vs)-1], true
}

func (m *memStore) PutIfAbsent(_ context.Context, key string, body []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", m.fail
	}
	if _, ok := m.latest(key); ok {
		return "", fmt.Errorf("%s: %w", key, ErrExists)
	}
	return m.add(key, body, false), nil
}

func (m *memStore) Get(_ context.Context, key, version string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, "", m.fail
	}
	if version == "" {
		v, ok := m.latest(key)
		if !ok {
			return nil, "", fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return append([]byte(nil), v.body...), v.id, nil
	}
	for _, v := range m.versions[key] {
		if v.id == version && !v.marker {
			return append([]byte(nil), v.body...), v.id, nil
		}
	}
	return nil, "", fmt.Errorf("%s@%s: %w", key, version, ErrNotFound)
}

func (m *memStore) List(_ context.Context, prefix, startAfter string, fn func(string) error) error {
	m.mu.Lock()
	var ks []string
	for k := range m.versions {
		if _, ok := m.latest(k); ok && strings.HasPrefix(k, prefix) && k > startAfter {
			ks = append(ks, k)
		}
	}
	m.mu.Unlock()
	sort.Strings(ks)
	for _, k := range ks {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Versions(_ context.Context, prefix string, fn func(ObjectVersion) error) error {
	m.mu.Lock()
	var out []ObjectVersion
	for k, vs := range m.versions {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		for i := len(vs) - 1; i >= 0; i-- {
			out = append(out, ObjectVersion{Key: k, VersionID: vs[i].id, IsLatest: i == len(vs)-1, DeleteMarker: vs[i].marker, LastModified: vs[i].at})
		}
	}
	m.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	for _, ov := range out {
		if err := fn(ov); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Retention(_ context.Context, key, version string) (Retention, error) {
	return Retention{Mode: "COMPLIANCE", RetainUntil: time.Now().Add(24 * time.Hour)}, nil
}

// overwrite replaces a version's bytes in place (what Object Lock prevents).
func (m *memStore) overwrite(key string, body []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[key]
	vs[0].body = body
}

// remove deletes every version of key permanently (a backend without lock).
func (m *memStore) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.versions, key)
}
