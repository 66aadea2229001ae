package token

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadChecksTheOpenedFile: the loader follows a symlink (Kubernetes
// secret mounts are symlinks) and judges the file it opened: its type and
// its mode.
func TestLoadChecksTheOpenedFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kr, _ := NewKeyring()
	target := filepath.Join(dir, "real.json")
	if err := kr.Save(target); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "keyring.json")
	if err := os.Symlink("real.json", link); err != nil {
		t.Fatal(err)
	}
	os.Chmod(target, 0o440)
	if _, err := Load(ctx, link); err != nil {
		t.Fatalf("0440 through a symlink: %v", err)
	}
	os.Chmod(target, 0o444) // the link itself is 0777; the target decides
	if _, err := Load(ctx, link); err == nil || !strings.Contains(err.Error(), "0444") {
		t.Fatalf("0444 through a symlink: err = %v", err)
	}
	sub := filepath.Join(dir, "dir")
	os.Mkdir(sub, 0o700)
	if _, err := Load(ctx, sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: err = %v", err)
	}
}
