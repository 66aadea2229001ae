package auditstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/devstacktest"
	"github.com/pcistream/pcistream/internal/s3x"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

var bucketN int

// newBucket creates a fresh Object Lock bucket so tests do not see each
// other's chains (locked objects can never be cleaned up).
func newBucket(t *testing.T, lock bool) *auditstore.Store {
	t.Helper()
	ctx := context.Background()
	cl, err := s3x.NewClient(ctx, stack.S3)
	if err != nil {
		t.Fatal(err)
	}
	bucketN++
	name := fmt.Sprintf("audit-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), bucketN)
	if len(name) > 63 {
		name = name[len(name)-63:]
	}
	name = strings.Trim(strings.ReplaceAll(name, "_", "-"), "-")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(lock)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return auditstore.New(cl, name, auditstore.Retention(24*time.Hour))
}

func recs(p int32, offsets ...int64) []chain.Record {
	out := make([]chain.Record, len(offsets))
	for i, o := range offsets {
		out[i] = chain.Record{Partition: p, Offset: o, TimeMs: 1000 + o, KafkaTimeMs: 1000 + o, Event: []byte(fmt.Sprintf(`{"id":"e%d-%d"}`, p, o))}
	}
	return out
}

func signer(t *testing.T) chain.Signer {
	k, err := chain.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := chain.ParsePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return chain.NewSigner(priv)
}

func build(t *testing.T, s *auditstore.Store, sg chain.Signer) {
	t.Helper()
	ctx := context.Background()
	if err := chain.PublishPublicKey(ctx, s, chain.EncodePublicKey(sg.Public()), chain.KeyID(sg.Public())); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		w, err := chain.OpenPartition(ctx, s, "audit.events", p, chain.WriterSigner(sg))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]int64{{0, 1, 2}, {3, 4}, {6, 7}} {
			if _, err := w.Append(ctx, recs(p, b...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := chain.WriteCheckpoint(ctx, s, sg, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, s *auditstore.Store, sg chain.Signer) *chain.Report {
	t.Helper()
	rep, err := chain.Verify(context.Background(), s, chain.TrustedKey(sg.Public()))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasDefect(rep *chain.Report, kind string) bool {
	for _, d := range rep.Defects {
		if d.Kind == kind {
			return true
		}
	}
	return false
}

func TestRefusesBucketWithoutObjectLock(t *testing.T) {
	ctx := context.Background()
	if err := newBucket(t, true).CheckBucket(ctx); err != nil {
		t.Fatalf("locked bucket refused: %v", err)
	}
	err := newBucket(t, false).CheckBucket(ctx)
	if err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("plain bucket accepted: %v", err)
	}
}

func TestRoundTripVerify(t *testing.T) {
	s, sg := newBucket(t, true), signer(t)
	build(t, s, sg)
	rep := verify(t, s, sg)
	if !rep.OK() {
		t.Fatalf("defects: %v", rep.Defects)
	}
	for _, w := range rep.Warnings {
		if !strings.Contains(w, "offset gaps") { // offset 5 is left out on purpose
			t.Errorf("warning: %s", w)
		}
	}
	if len(rep.Partitions) != 2 || rep.Partitions[1].Records != 7 || rep.Checkpoints != 1 || rep.Partitions[1].Gaps != 1 {
		t.Fatalf("report %+v warnings %v", rep.Partitions, rep.Warnings)
	}
	r, err := s.Retention(context.Background(), chain.ObjectKey(0, 0, 2), "")
	if err != nil || r.Mode != "COMPLIANCE" || r.RetainUntil.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("retention %+v %v", r, err)
	}
}

func TestConditionalPut(t *testing.T) {
	ctx := context.Background()
	s := newBucket(t, true)
	v1, err := s.PutIfAbsent(ctx, "audit/v1/x", []byte("a"))
	if err != nil || v1 == "" {
		t.Fatalf("put: %q %v", v1, err)
	}
	if _, err := s.PutIfAbsent(ctx, "audit/v1/x", []byte("b")); !errors.Is(err, chain.ErrExists) {
		t.Fatalf("second put: %v, want ErrExists", err)
	}
	b, v, err := s.Get(ctx, "audit/v1/x", "")
	if err != nil || string(b) != "a" || v != v1 {
		t.Fatalf("get %q %q %v", b, v, err)
	}
	if _, _, err := s.Get(ctx, "audit/v1/nope", ""); !errors.Is(err, chain.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestLockedObjectCannotBeDeleted(t *testing.T) {
	ctx := context.Background()
	s, sg := newBucket(t, true), signer(t)
	build(t, s, sg)
	key := chain.ObjectKey(0, 0, 2)
	_, ver, err := s.Get(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key), VersionId: aws.String(ver)})
	if err == nil {
		t.Fatal("deleting a COMPLIANCE-locked version succeeded")
	}
	if !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("delete failed with %v, want 403 AccessDenied", err)
	}
	_, err = s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key), VersionId: aws.String(ver), BypassGovernanceRetention: aws.Bool(true)})
	if err == nil {
		t.Fatal("COMPLIANCE lock bypassed with BypassGovernanceRetention")
	}
	if b, _, err := s.Get(ctx, key, ver); err != nil || len(b) == 0 {
		t.Fatalf("object gone after refused delete: %v", err)
	}
	if rep := verify(t, s, sg); !rep.OK() {
		t.Fatalf("defects after refused delete: %v", rep.Defects)
	}
}

func TestTamperingDetected(t *testing.T) {
	ctx := context.Background()
	t.Run("new version over object", func(t *testing.T) {
		s, sg := newBucket(t, true), signer(t)
		build(t, s, sg)
		// A plain PUT (no If-None-Match) over a locked key succeeds in a
		// versioned bucket: it adds a version that readers of "latest" see.
		_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ObjectKey(1, 3, 4)), Body: strings.NewReader("forged")})
		if err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, s, sg); !hasDefect(rep, chain.DefectShadowVersion) {
			t.Fatalf("not detected: %v", rep.Defects)
		}
	})
	t.Run("delete marker over manifest", func(t *testing.T) {
		s, sg := newBucket(t, true), signer(t)
		build(t, s, sg)
		_, err := s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ManifestKey(0, 2))})
		if err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, s, sg); !hasDefect(rep, chain.DefectDeleted) {
			t.Fatalf("not detected: %v", rep.Defects)
		}
	})
	t.Run("manifest version delete refused", func(t *testing.T) {
		s, sg := newBucket(t, true), signer(t)
		build(t, s, sg)
		_, ver, _ := s.Get(ctx, chain.ManifestKey(0, 2), "")
		_, err := s.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ManifestKey(0, 2)), VersionId: aws.String(ver)})
		if err == nil {
			// The backend allowed it: verify must see the truncation.
			if rep := verify(t, s, sg); !hasDefect(rep, chain.DefectCheckpointHead) {
				t.Fatalf("deleted manifest version not detected: %v", rep.Defects)
			}
			return
		}
		if rep := verify(t, s, sg); !rep.OK() {
			t.Fatalf("defects: %v", rep.Defects)
		}
	})
	t.Run("reordered manifest", func(t *testing.T) {
		s, sg := newBucket(t, true), signer(t)
		build(t, s, sg)
		// An attacker cannot rewrite a locked version; the best they can
		// do is shadow manifest 1 with a copy of manifest 2.
		b, _, _ := s.Get(ctx, chain.ManifestKey(0, 2), "")
		if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ManifestKey(0, 1)), Body: strings.NewReader(string(b))}); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, s, sg); !hasDefect(rep, chain.DefectShadowVersion) {
			t.Fatalf("not detected: %v", rep.Defects)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		s, sg := newBucket(t, true), signer(t)
		build(t, s, sg)
		other := signer(t)
		w, _ := chain.OpenPartition(ctx, s, "audit.events", 0, chain.WriterSigner(other), chain.WriterTrust(sg.Public()))
		if _, err := w.Append(ctx, recs(0, 8)); err != nil {
			t.Fatal(err)
		}
		// A checkpoint signed by someone else's key.
		if _, err := chain.WriteCheckpoint(ctx, s, other, time.Now(), sg.Public()); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, s, sg); !hasDefect(rep, chain.DefectSignature) {
			t.Fatalf("not detected: %v", rep.Defects)
		}
	})
}

func TestMissingBucketIsRefused(t *testing.T) {
	s := newBucket(t, true)
	missing := auditstore.New(s.Client(), "no-such-audit-bucket")
	if err := missing.CheckBucket(context.Background()); !errors.Is(err, chain.ErrNotImmutable) {
		t.Fatalf("missing bucket: %v", err)
	}
}
