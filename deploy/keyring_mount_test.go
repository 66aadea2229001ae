package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pcistream/pcistream/internal/token"
)

// configuredKeyring returns the keyring path the ConfigMap's config file
// gives the processors.
func configuredKeyring(t *testing.T, objs []k8sObject) string {
	t.Helper()
	for _, o := range objs {
		if o.kind() != "ConfigMap" || o.name() != "pcistream-config" {
			continue
		}
		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(str(get(o.doc, "data", "config.yaml"))), &cfg); err != nil {
			t.Fatalf("pcistream-config config.yaml: %v", err)
		}
		return str(cfg["keyring"])
	}
	t.Fatal("no pcistream-config ConfigMap")
	return ""
}

// mountSecret lays out dir the way the kubelet mounts a secret volume: the
// files in a timestamped directory, a "..data" symlink to it and one symlink
// per key, each file with the volume's defaultMode.
func mountSecret(t *testing.T, dir string, files map[string][]byte, mode os.FileMode) {
	t.Helper()
	ts := filepath.Join(dir, "..2026_11_29_12_00_00.000000001")
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		p := filepath.Join(ts, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestK8sKeyringMountLoads renders the manifests, finds every workload that
// mounts the keyring secret, mounts a real keyring the way the kubelet would
// (symlinks, the volume's defaultMode) and loads it with the keyring loader
// from the path the config gives: the tokenizer must be able to start.
func TestK8sKeyringMountLoads(t *testing.T) {
	objs := k8sObjects(t)
	want := configuredKeyring(t, objs)
	if want == "" {
		t.Fatal("the config sets no keyring path")
	}
	full, err := token.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	kr, _, err := full.Split() // what `keys init` writes for the tokenizer
	if err != nil {
		t.Fatal(err)
	}
	body, err := kr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mounted := 0
	for _, o := range objs {
		if o.kind() != "StatefulSet" && o.kind() != "Deployment" {
			continue
		}
		pod := get(o.doc, "spec", "template", "spec")
		modes := map[string]int{} // volume name -> defaultMode of keyring secrets
		for _, v := range list(get(pod, "volumes")) {
			if s := str(get(v, "secret", "secretName")); strings.Contains(s, "keyring") {
				m, ok := get(v, "secret", "defaultMode").(int)
				if !ok {
					m = 0o644 // the Kubernetes default
				}
				modes[str(get(v, "name"))] = m
			}
		}
		for _, c := range list(get(pod, "containers")) {
			for _, vm := range list(get(c, "volumeMounts")) {
				mode, ok := modes[str(get(vm, "name"))]
				if !ok {
					continue
				}
				mp := str(get(vm, "mountPath"))
				if !strings.HasPrefix(want, mp+"/") {
					t.Errorf("%s: keyring secret mounted at %s, but the config reads %s", o.name(), mp, want)
					continue
				}
				root := t.TempDir()
				dir := filepath.Join(root, filepath.FromSlash(mp))
				mountSecret(t, dir, map[string][]byte{strings.TrimPrefix(want, mp+"/"): body}, os.FileMode(mode))
				got, err := token.Load(context.Background(), filepath.Join(root, filepath.FromSlash(want)))
				if err != nil {
					t.Errorf("%s: the keyring mounted with defaultMode %04o does not load: %v", o.name(), mode, err)
					continue
				}
				if got.Current() != kr.Current() || got.Role() != token.RoleTokenizer {
					t.Errorf("%s: loaded keyring version %d, want %d", o.name(), got.Current(), kr.Current())
				}
				mounted++
			}
		}
	}
	if mounted == 0 {
		t.Fatal("no workload mounts the keyring secret")
	}
}
