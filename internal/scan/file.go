package scan

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/pcistream/pcistream/internal/pan"
)

// scanFiles scans a file, or every regular file under a directory
// (recursively, symlinks not followed), gzip transparently, reporting file:line.
func (r *run) scanFiles(ctx context.Context, t Target) error {
	st, err := os.Stat(t.Path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w (check the path)", r.s.mask(t.Path), unwrapPathErr(err))
	}
	if !st.IsDir() {
		return r.scanFile(ctx, newLineScanner(r.s.det), t, t.Path)
	}
	root := t.Path
	if lst, err := os.Lstat(root); err == nil && lst.Mode()&fs.ModeSymlink != 0 {
		root += string(filepath.Separator) // walk into a symlinked top-level directory
	}
	// An unreadable file or directory does not stop the walk, but the scan
	// is then incomplete: the target fails with a count and the first error.
	var (
		mu     sync.Mutex
		failed int
		first  error
	)
	fail := func(err error) {
		mu.Lock()
		if failed++; first == nil {
			first = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.s.cfg.workers)
	scanners := sync.Pool{New: func() any { return newLineScanner(r.s.det) }}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			fail(fmt.Errorf("cannot read %s: %w", r.s.mask(p), unwrapPathErr(err)))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ls := scanners.Get().(*lineScanner)
			defer scanners.Put(ls)
			if err := r.scanFile(ctx, ls, t, p); err != nil && ctx.Err() == nil {
				fail(err)
			}
		}()
		return nil
	})
	wg.Wait()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d file(s) or directories could not be read, the first: %w (fix permissions or exclude them)", failed, first)
	}
	return nil
}

func (r *run) scanFile(ctx context.Context, ls *lineScanner, t Target, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", r.s.mask(p), unwrapPathErr(err))
	}
	defer f.Close()
	r.items.Add(1)
	shown := r.s.mask(p)
	err = ls.scan(f, func(n int64) { r.bytes.Add(n) }, func(line int64, occ int, m pan.Match) {
		loc := fmt.Sprintf("%s:%d", shown, line)
		r.emit(Finding{
			Kind:     KindPAN,
			Source:   SourceFile,
			Target:   t.String(),
			Location: loc,
			File:     &FileLocation{Path: shown, Line: line},
			Network:  m.Network.String(),
			Last4:    string(m.Last4[:]),
			Encoding: m.Encoding.String(),
			Digits:   m.Digits,
			Message:  panMessage(m, loc),
		}, "file:"+loc, occ)
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", shown, err)
	}
	return nil
}

// unwrapPathErr drops the *PathError wrapper whose message repeats the
// (unmasked) path.
func unwrapPathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
