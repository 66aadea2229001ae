package auditstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pcistream/pcistream/internal/auditstore"
	"github.com/pcistream/pcistream/internal/chain"
	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/miniotest"
	"github.com/pcistream/pcistream/internal/s3x"
)

// The tamper matrix: everything an insider holding the auditor's own S3
// write permission (but neither its signing key nor write access to the
// Kafka anchor topic) can do to the trail, run against every S3
// implementation at hand. Each case either is refused by the store (Object
// Lock COMPLIANCE) or makes verify fail with a named defect.

// backend is an S3 implementation to run the matrix on.
type backend struct {
	name string
	s3   config.S3
}

// backends returns the embedded S3 and, when it can run, MinIO.
func backends(t *testing.T) []backend {
	out := []backend{{"embedded", stack.S3}}
	if cfg, why := miniotest.Start(t); why != "" {
		t.Log("MinIO skipped: " + why)
	} else {
		out = append(out, backend{"minio", cfg})
	}
	return out
}

// bucketOn creates a fresh Object Lock bucket on a backend.
func bucketOn(t *testing.T, b backend, name string, retention time.Duration) *auditstore.Store {
	t.Helper()
	ctx := context.Background()
	cl, err := s3x.NewClient(ctx, b.s3)
	if err != nil {
		t.Fatal(err)
	}
	bucketN++
	name = fmt.Sprintf("tamper-%d-%s", bucketN, strings.ToLower(strings.NewReplacer(" ", "-", "_", "-", "/", "-").Replace(name)))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("%s: create bucket %s: %v", b.name, name, err)
	}
	return auditstore.New(cl, name, auditstore.Retention(retention))
}

// put is an attacker's plain PUT (no condition, no lock) over key.
func put(t *testing.T, s *auditstore.Store, key string, body []byte) {
	t.Helper()
	if _, err := s.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key), Body: strings.NewReader(string(body))}); err != nil {
		t.Fatalf("attacker PUT %s: %v", key, err)
	}
}

func deleteMarker(t *testing.T, s *auditstore.Store, key string) {
	t.Helper()
	if _, err := s.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key)}); err != nil {
		t.Fatalf("attacker DELETE %s: %v", key, err)
	}
}

func get(t *testing.T, s *auditstore.Store, key string) ([]byte, string) {
	t.Helper()
	b, v, err := s.Get(context.Background(), key, "")
	if err != nil {
		t.Fatal(err)
	}
	return b, v
}

// deleteVersion tries to remove a locked version for good.
func deleteVersion(s *auditstore.Store, key, version string) error {
	_, err := s.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key), VersionId: aws.String(version), BypassGovernanceRetention: aws.Bool(true)})
	return err
}

type tamperCase struct {
	name string
	// tamper does the damage and returns extra verify options (anchors);
	// refused cases return refused=true when the store said no.
	tamper func(t *testing.T, s *auditstore.Store, sg chain.Signer) (opts []chain.VerifyOpt, refused bool)
	want   []string // any one of these defect kinds; nil: the trail must still verify
	// exact: no defect of another kind may appear (the chain's own
	// version was read, so nothing cascades).
	exact bool
}

func tamperCases() []tamperCase {
	ctx := context.Background()
	forged := func(t *testing.T, s *auditstore.Store, sg, attacker chain.Signer) {
		w, err := chain.OpenPartition(ctx, s, "audit.events", 0, chain.WriterSigner(attacker), chain.WriterTrust(sg.Public()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Append(ctx, recs(0, 8, 9, 10, 11, 12)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(err error) bool { return err != nil }
	return []tamperCase{
		{"overwrite object", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			put(t, s, chain.ObjectKey(1, 3, 4), []byte("forged"))
			return nil, false
		}, []string{chain.DefectShadowVersion}, false},
		{"delete object", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			deleteMarker(t, s, chain.ObjectKey(0, 3, 4))
			return nil, false
		}, []string{chain.DefectDeleted}, false},
		{"altered record re-gzipped", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			alt := recs(0, 3, 4)
			alt[1].Event = []byte(`{"id":"forged"}`)
			for i := range alt {
				alt[i].Topic = "audit.events"
			}
			b, _ := chain.EncodeBatch(alt)
			put(t, s, chain.ObjectKey(0, 3, 4), b.Object)
			return nil, false
		}, []string{chain.DefectShadowVersion}, false},
		{"delete manifest", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			deleteMarker(t, s, chain.ManifestKey(0, 1))
			return nil, false
		}, []string{chain.DefectDeleted}, false},
		{"alter manifest", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			b, _ := get(t, s, chain.ManifestKey(1, 1))
			m, _ := chain.DecodeManifest(b)
			m.RecordCount = 1
			put(t, s, chain.ManifestKey(1, 1), m.Encode())
			return nil, false
		}, []string{chain.DefectShadowVersion}, false},
		{"swap batches", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			a, _ := get(t, s, chain.ManifestKey(0, 1))
			b, _ := get(t, s, chain.ManifestKey(0, 2))
			put(t, s, chain.ManifestKey(0, 1), b)
			put(t, s, chain.ManifestKey(0, 2), a)
			return nil, false
		}, []string{chain.DefectShadowVersion}, false},
		{"truncate head", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			deleteMarker(t, s, chain.ManifestKey(1, 2))
			deleteMarker(t, s, chain.ObjectKey(1, 6, 7))
			return nil, false
		}, []string{chain.DefectDeleted, chain.DefectCheckpointHead}, false},
		{"delete checkpoint", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			deleteMarker(t, s, chain.CheckpointKey(0))
			return nil, false
		}, []string{chain.DefectDeleted}, false},
		{"foreign checkpoint", func(t *testing.T, s *auditstore.Store, sg chain.Signer) ([]chain.VerifyOpt, bool) {
			attacker := signer(t)
			forged(t, s, sg, attacker)
			if _, err := chain.WriteCheckpoint(ctx, s, attacker, time.Now(), sg.Public()); err != nil {
				t.Fatal(err)
			}
			return nil, false
		}, []string{chain.DefectSignature}, false},
		{"missing retention", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			// A next manifest written without a lock.
			b, _ := get(t, s, chain.ManifestKey(0, 2))
			m, _ := chain.DecodeManifest(b)
			m.Sequence, m.PrevManifestSHA256 = 3, chain.SHA256Hex(b)
			put(t, s, chain.ManifestKey(0, 3), m.Encode())
			return nil, false
		}, []string{chain.DefectRetention}, false},
		{"delete object version refused", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			_, v := get(t, s, chain.ObjectKey(0, 0, 2))
			return nil, refused(deleteVersion(s, chain.ObjectKey(0, 0, 2), v))
		}, nil, false},
		{"delete manifest version refused", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			_, v := get(t, s, chain.ManifestKey(0, 2))
			return nil, refused(deleteVersion(s, chain.ManifestKey(0, 2), v))
		}, nil, false},
		{"delete checkpoint version refused", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			_, v := get(t, s, chain.CheckpointKey(1))
			return nil, refused(deleteVersion(s, chain.CheckpointKey(1), v))
		}, nil, false},
		{"shorten retention refused", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			_, v := get(t, s, chain.ManifestKey(1, 0))
			_, err := s.Client().PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ManifestKey(1, 0)), VersionId: aws.String(v),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(time.Now().Add(time.Minute))}, BypassGovernanceRetention: aws.Bool(true)})
			return nil, refused(err)
		}, nil, false},
		{"downgrade to governance refused", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			_, v := get(t, s, chain.ObjectKey(1, 0, 2))
			_, err := s.Client().PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: aws.String(chain.ObjectKey(1, 0, 2)), VersionId: aws.String(v),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(48 * time.Hour))}, BypassGovernanceRetention: aws.Bool(true)})
			return nil, refused(err)
		}, nil, false},
		{"forged head with correct links", func(t *testing.T, s *auditstore.Store, sg chain.Signer) ([]chain.VerifyOpt, bool) {
			forged(t, s, sg, signer(t))
			if _, err := chain.OpenPartition(ctx, s, "audit.events", 0, chain.WriterSigner(sg)); err == nil {
				t.Error("the auditor's writer resumes from the forged head")
			}
			return nil, false
		}, []string{chain.DefectSignature}, false},
		{"unsigned head", func(t *testing.T, s *auditstore.Store, sg chain.Signer) ([]chain.VerifyOpt, bool) {
			b, _ := get(t, s, chain.ManifestKey(0, 2))
			m, _ := chain.DecodeManifest(b)
			m.Sequence, m.PrevManifestSHA256, m.KeyID, m.Signature = 3, chain.SHA256Hex(b), "", ""
			if _, err := s.PutIfAbsent(ctx, chain.ManifestKey(0, 3), m.Encode()); err != nil {
				t.Fatal(err)
			}
			return nil, false
		}, []string{chain.DefectSignature}, false},
		{"checkpoint by a key published in the bucket", func(t *testing.T, s *auditstore.Store, sg chain.Signer) ([]chain.VerifyOpt, bool) {
			attacker := signer(t)
			chain.PublishPublicKey(ctx, s, chain.EncodePublicKey(attacker.Public()), chain.KeyID(attacker.Public()))
			forged(t, s, sg, attacker)
			if _, err := chain.WriteCheckpoint(ctx, s, attacker, time.Now(), sg.Public()); err != nil {
				t.Fatal(err)
			}
			return nil, false
		}, []string{chain.DefectSignature}, false},
		{"shadowed manifest read by signature not time", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			b, _ := get(t, s, chain.ManifestKey(0, 0))
			m, _ := chain.DecodeManifest(b)
			m.RecordCount, m.Signature = 2, ""
			put(t, s, chain.ManifestKey(0, 0), m.Encode())
			return nil, false
		}, []string{chain.DefectShadowVersion}, true},
		{"removed checkpoint caught by its anchor", func(t *testing.T, s *auditstore.Store, _ chain.Signer) ([]chain.VerifyOpt, bool) {
			b, _ := get(t, s, chain.CheckpointKey(1))
			deleteMarker(t, s, chain.CheckpointKey(1))
			return []chain.VerifyOpt{chain.Anchors(chain.Anchor{Source: "file", Bytes: b})}, false
		}, []string{chain.DefectDeleted, chain.DefectAnchor}, false},
		{"replaced checkpoint caught by its anchor", func(t *testing.T, s *auditstore.Store, sg chain.Signer) ([]chain.VerifyOpt, bool) {
			b, _ := get(t, s, chain.CheckpointKey(1))
			c, _ := chain.DecodeCheckpoint(b)
			c.Time = c.Time.Add(time.Second)
			chain.SignCheckpoint(ctx, sg, c) // even with the real key
			return []chain.VerifyOpt{chain.Anchors(chain.Anchor{Source: "kafka", Bytes: c.Encode()})}, false
		}, []string{chain.DefectAnchor}, false},
	}
}

func runTamperCase(t *testing.T, b backend, tc tamperCase) {
	ctx := context.Background()
	s, sg := bucketOn(t, b, tc.name, 24*time.Hour), signer(t)
	buildTwo(t, s, sg)
	opts, refused := tc.tamper(t, s, sg)
	rep, err := chain.Verify(ctx, s, append(opts, chain.TrustedKey(sg.Public()))...)
	if err != nil {
		t.Fatal(err)
	}
	if tc.want == nil {
		if !refused {
			t.Fatalf("%s allowed it", b.name)
		}
		if !rep.OK() {
			t.Fatalf("refused, yet the trail has defects: %v", rep.Defects)
		}
		return
	}
	found := false
	for _, d := range rep.Defects {
		for _, k := range tc.want {
			found = found || d.Kind == k
		}
		if tc.exact && !slices.Contains(tc.want, d.Kind) {
			t.Errorf("unexpected %s", d)
		}
	}
	if !found {
		t.Fatalf("want a %v defect, verify reported %v", tc.want, rep.Defects)
	}
}

func TestTamperMatrix(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tamperCases() {
				t.Run(tc.name, func(t *testing.T) {
					runTamperCase(t, b, tc)
				})
			}
		})
	}
}

// buildTwo is build plus a batch on partition 1 and a second checkpoint.
func buildTwo(t *testing.T, s *auditstore.Store, sg chain.Signer) {
	t.Helper()
	ctx := context.Background()
	build(t, s, sg)
	w, err := chain.OpenPartition(ctx, s, "audit.events", 1, chain.WriterSigner(sg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, recs(1, 8, 9)); err != nil {
		t.Fatal(err)
	}
	if c, err := chain.WriteCheckpoint(ctx, s, sg, time.Now()); err != nil || c == nil || c.Sequence != 1 {
		t.Fatalf("second checkpoint: %v %v", c, err)
	}
}

// TestTruncationNeedsAnAnchor removes, for good, partition 1's last batch,
// its manifest and the newest checkpoint (possible once retention expired,
// or on a store that does not enforce it): the rest is a consistent,
// shorter trail. Only a checkpoint held outside the bucket reveals it.
func TestTruncationNeedsAnAnchor(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, sg := bucketOn(t, b, "truncation", 2*time.Second), signer(t)
			buildTwo(t, s, sg)
			anchor, _ := get(t, s, chain.CheckpointKey(1))
			time.Sleep(3 * time.Second) // retention expires
			for _, key := range []string{chain.ManifestKey(1, 3), chain.ObjectKey(1, 8, 9), chain.CheckpointKey(1)} {
				_, v := get(t, s, key)
				if err := deleteVersion(s, key, v); err != nil {
					t.Fatalf("deleting %s after its retention expired: %v", key, err)
				}
			}
			rep, err := chain.Verify(ctx, s, chain.TrustedKey(sg.Public()), chain.CheckRetention(false))
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("without an anchor the shortened trail is consistent; got %v", rep.Defects)
			}
			rep, err = chain.Verify(ctx, s, chain.TrustedKey(sg.Public()), chain.CheckRetention(false),
				chain.Anchors(chain.Anchor{Source: "file", Bytes: anchor}))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, d := range rep.Defects {
				kinds[d.Kind] = true
			}
			if !kinds[chain.DefectAnchor] || !kinds[chain.DefectCheckpointHead] {
				t.Fatalf("truncation not caught by the anchor: %v", rep.Defects)
			}
		})
	}
}
