package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
)

func runCobra(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// offlineChain writes a small signed chain into a directory (the offline
// layout verify --dir reads) and returns the directory and public key file.
func offlineChain(t *testing.T) (dir, pubFile string) {
	t.Helper()
	dir = t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	cfg := config.Default()
	if _, _, err := runCobra(t, newAuditCmd(&cfg), "keygen", "--out", keyFile); err != nil {
		t.Fatal(err)
	}
	signer, err := chain.LoadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := chain.NewDirStore(dir)
	if err := chain.PublishPublicKey(ctx, s, chain.EncodePublicKey(signer.Public()), chain.KeyID(signer.Public())); err != nil {
		t.Fatal(err)
	}
	w, err := chain.OpenPartition(ctx, s, "audit.events", 0, chain.WriterSigner(signer))
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 3; b++ {
		var recs []chain.Record
		for i := 0; i < 4; i++ {
			o := int64(b*4 + i)
			recs = append(recs, chain.Record{Partition: 0, Offset: o, TimeMs: 1000 + o, Event: json.RawMessage(fmt.Sprintf(`{"id":"e%d"}`, o))})
		}
		if _, err := w.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := chain.WriteCheckpoint(ctx, s, signer, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir, strings.TrimSuffix(keyFile, ".pem") + ".pub.pem"
}

func TestVerifyExportProveOffline(t *testing.T) {
	dir, pub := offlineChain(t)
	cfg := config.Default()
	out, _, err := runCobra(t, newVerifyCmd(&cfg), "--dir", dir, "--no-kafka", "--public-key", pub)
	if err != nil || !strings.Contains(out, "result: OK") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, _, err = runCobra(t, newVerifyCmd(&cfg), "--dir", dir, "--no-kafka", "--public-key", pub, "--format", "json", "-q")
	var rep chain.Report
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK() || rep.Partitions[0].Records != 12 {
		t.Fatalf("verify json: %v %+v", err, rep)
	}
	out, _, err = runCobra(t, newAuditCmd(&cfg), "export", "--dir", dir, "--no-kafka", "--public-key", pub, "--from", "1003", "--to", "1007")
	if err != nil || strings.Count(out, "\n") != 4 || !strings.Contains(out, `"offset":3,`) || strings.Contains(out, `"offset":7,`) {
		t.Fatalf("export: %v\n%s", err, out)
	}
	out, _, err = runCobra(t, newAuditCmd(&cfg), "prove", "--dir", dir, "--no-kafka", "--public-key", pub, "--partition", "0", "--offset", "9")
	var ip chain.InclusionProof
	if err != nil || json.Unmarshal([]byte(out), &ip) != nil || ip.LeafIndex != 9 || ip.TreeSize != 12 {
		t.Fatalf("prove: %v\n%s", err, out)
	}
	pk, _ := chain.LoadPublicKey(pub)
	if err := ip.Check(pk); err != nil {
		t.Fatalf("proof does not check: %v", err)
	}

	// Tamper with one object: verify and export fail with the defect.
	obj := filepath.Join(dir, filepath.FromSlash(chain.ObjectKey(0, 4, 7)))
	os.Chmod(obj, 0o644)
	b, _ := os.ReadFile(obj)
	b[len(b)-9] ^= 1
	os.WriteFile(obj, b, 0o644)
	out, _, err = runCobra(t, newVerifyCmd(&cfg), "--dir", dir, "--no-kafka", "--public-key", pub, "-q")
	if err == nil || !strings.Contains(out, "object-hash") {
		t.Fatalf("tampered copy verified: %v\n%s", err, out)
	}
	if _, _, err := runCobra(t, newAuditCmd(&cfg), "export", "--dir", dir, "--no-kafka", "--public-key", pub, "--from", "0"); err == nil {
		t.Fatal("export of a tampered trail succeeded")
	}
	// A different trusted key: every checkpoint signature fails.
	_, otherPub := offlineChain(t)
	if out, _, err := runCobra(t, newVerifyCmd(&cfg), "--dir", dir, "--no-kafka", "--public-key", otherPub, "-q"); err == nil || !strings.Contains(out, "signature") {
		t.Fatalf("wrong key accepted: %v\n%s", err, out)
	}
}
