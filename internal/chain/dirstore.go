package chain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DirStore is a Store over a local directory holding a copy of the bucket
// (for example made with `aws s3 sync s3://BUCKET/audit/ DIR/audit/`), for
// offline verification. Each file is a single version; version ids are
// ignored and retention cannot be read.
type DirStore struct{ dir string }

// NewDirStore returns a Store rooted at dir.
func NewDirStore(dir string) *DirStore { return &DirStore{dir: dir} }

func (d *DirStore) path(key string) (string, error) {
	if strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("refusing key %q", key)
	}
	return filepath.Join(d.dir, filepath.FromSlash(key)), nil
}

// PutIfAbsent creates the file exclusively.
func (d *DirStore) PutIfAbsent(_ context.Context, key string, body []byte) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s: %w", key, ErrExists)
	}
	if err != nil {
		return "", err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return "", f.Close()
}

// Get reads the file; versionID is ignored.
func (d *DirStore) Get(_ context.Context, key, _ string) ([]byte, string, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return b, "", err
}

func (d *DirStore) keys(prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		k := filepath.ToSlash(rel)
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// List walks the directory in key order.
func (d *DirStore) List(_ context.Context, prefix, startAfter string, fn func(string) error) error {
	ks, err := d.keys(prefix)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k <= startAfter {
			continue
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// Versions reports every file as one version.
func (d *DirStore) Versions(_ context.Context, prefix string, fn func(ObjectVersion) error) error {
	ks, err := d.keys(prefix)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if err := fn(ObjectVersion{Key: k, IsLatest: true}); err != nil {
			return err
		}
	}
	return nil
}

// Retention is unknown offline.
func (d *DirStore) Retention(context.Context, string, string) (Retention, error) {
	return Retention{}, ErrRetentionUnknown
}
