package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// knownMetrics are the metrics pcistream exports. Alert rules and dashboard
// panels may name no other pcistream_* metric: a typo there is an alert that
// never fires.
var knownMetrics = map[string]bool{
	"pcistream_records_in_total":           true, // {processor}
	"pcistream_records_out_total":          true, // {processor,topic}
	"pcistream_dlq_total":                  true, // {processor,reason}
	"pcistream_txn_commits_total":          true, // {processor}
	"pcistream_txn_aborts_total":           true, // {processor}
	"pcistream_consumer_lag":               true, // {processor}
	"pcistream_pans_masked_total":          true, // {policy,topic}
	"pcistream_tokens_issued_total":        true,
	"pcistream_audit_write_failures_total": true,
	"pcistream_s3_write_seconds":           true, // histogram
	"pcistream_audit_chain_head":           true, // {partition}
	"pcistream_scan_findings":              true, // scope scanner
	"pcistream_pans_leaked_total":          true, // output guard
	// The auditor's own (processors/auditor).
	"pcistream_audit_records_total":       true,
	"pcistream_audit_batches_total":       true,
	"pcistream_audit_checkpoints_total":   true,
	"pcistream_audit_decode_errors_total": true,
	"pcistream_audit_pans_masked_total":   true,
	"pcistream_audit_chain_last_offset":   true, // {partition}
	"pcistream_audit_tamper_alarms_total": true,
	// The gateway's (processors/gateway), beside its unprefixed
	// payment_context_isolation_duration_seconds.
	"pcistream_gateway_requests_total":                true, // {route,status}
	"pcistream_gateway_in_flight_requests":            true,
	"pcistream_gateway_produce_duration_seconds":      true, // histogram {outcome}
	"pcistream_gateway_commit_phase_duration_seconds": true, // histogram {phase}
	"pcistream_gateway_rejected_total":                true, // {reason}
	"pcistream_gateway_idempotent_replays_total":      true,
	"pcistream_gateway_key_check_aborts_total":        true,
}

// dashboardMetrics must each have a panel: the design's runtime metrics.
var dashboardMetrics = []string{
	"pcistream_records_in_total", "pcistream_records_out_total", "pcistream_dlq_total",
	"pcistream_txn_commits_total", "pcistream_txn_aborts_total", "pcistream_consumer_lag",
	"pcistream_pans_masked_total", "pcistream_tokens_issued_total", "pcistream_audit_write_failures_total",
	"pcistream_s3_write_seconds", "pcistream_audit_chain_head", "pcistream_scan_findings", "pcistream_pans_leaked_total",
	"pcistream_audit_records_total",
	"pcistream_gateway_requests_total", "pcistream_gateway_in_flight_requests", "pcistream_gateway_produce_duration_seconds",
	"pcistream_gateway_commit_phase_duration_seconds", "pcistream_gateway_rejected_total",
}

// processors are the long-running pcistream workers.
var processors = []string{"tokenizer", "masker", "auditor", "gateway"}

var metricRE = regexp.MustCompile(`\bpcistream_[a-z0-9_]+`)

// metricsIn returns the pcistream metric families named in a PromQL
// expression (histogram series suffixes folded into their family).
func metricsIn(expr string) []string {
	var out []string
	for _, m := range metricRE.FindAllString(expr, -1) {
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(m, suf); ok && knownMetrics[base] {
				m = base
			}
		}
		out = append(out, m)
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readYAMLDocs decodes every document of a multi-document YAML file.
func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// get walks nested maps: get(m, "spec", "template", "spec").
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case int:
		return strconv.Itoa(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strList(v any) []string {
	var out []string
	for _, e := range list(v) {
		out = append(out, str(e))
	}
	return out
}

// nonRootUser reports whether a compose/Docker user spec names a non-root uid.
func nonRootUser(u string) bool {
	uid, _, _ := strings.Cut(u, ":")
	n, err := strconv.Atoi(uid)
	return err == nil && n > 0
}

// --- docker-compose.yml -----------------------------------------------------

func composeServices(t *testing.T) map[string]map[string]any {
	t.Helper()
	var c struct {
		Services map[string]map[string]any `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	readYAML(t, "../docker-compose.yml", &c)
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c.Services
}

func isPcistream(svc map[string]any) bool {
	return str(get(svc, "build", "dockerfile")) == "deploy/Dockerfile" || strings.HasPrefix(str(svc["image"]), "pcistream")
}

func TestComposeServices(t *testing.T) {
	svcs := composeServices(t)
	for _, want := range []string{"kafka", "schema-registry", "minio", "minio-init", "prometheus", "grafana",
		"setup-keyring", "setup-topology", "setup-schemas", "tokenizer", "masker", "auditor", "gateway"} {
		if svcs[want] == nil {
			t.Errorf("service %q missing", want)
		}
	}
	for name, svc := range svcs {
		if svc["image"] == nil && svc["build"] == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		// Pin third-party images to a tag (overridable by env), never "latest".
		if img := str(svc["image"]); img != "" && !isPcistream(svc) && (!strings.Contains(img, ":") || strings.HasSuffix(img, ":latest")) {
			t.Errorf("%s: image %q is not pinned to a tag", name, img)
		}
		deps, _ := get(svc, "depends_on").(map[string]any)
		for dep, v := range deps {
			if svcs[dep] == nil {
				t.Errorf("%s depends on unknown service %q", name, dep)
			}
			switch c := str(get(v, "condition")); c {
			case "service_healthy":
				if svcs[dep]["healthcheck"] == nil {
					t.Errorf("%s waits for %s to be healthy but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully", "service_started":
			default:
				t.Errorf("%s: depends_on %s: condition %q", name, dep, c)
			}
		}
		// Bind mounts must point into the repository.
		for _, v := range strList(svc["volumes"]) {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
	}
}

func TestComposePcistreamHardening(t *testing.T) {
	svcs := composeServices(t)
	n := 0
	for name, svc := range svcs {
		if !isPcistream(svc) {
			continue
		}
		n++
		if svc["read_only"] != true {
			t.Errorf("%s: read_only is %v, want true", name, svc["read_only"])
		}
		if u := str(svc["user"]); !nonRootUser(u) {
			t.Errorf("%s: user %q is not a numeric non-root uid", name, u)
		}
		if !slices.Contains(strList(svc["cap_drop"]), "ALL") {
			t.Errorf("%s: cap_drop lacks ALL", name)
		}
		if !slices.Contains(strList(svc["security_opt"]), "no-new-privileges:true") {
			t.Errorf("%s: no-new-privileges not set", name)
		}
		env, _ := svc["environment"].(map[string]any)
		for _, k := range []string{"PCISTREAM_BROKERS", "PCISTREAM_REGISTRY_URL", "PCISTREAM_S3_ENDPOINT", "PCISTREAM_S3_BUCKET",
			"PCISTREAM_S3_ACCESS_KEY", "PCISTREAM_S3_SECRET_KEY", "PCISTREAM_S3_PATH_STYLE", "PCISTREAM_METRICS_ADDR", "PCISTREAM_KEYRING"} {
			if str(env[k]) == "" {
				t.Errorf("%s: env %s not set", name, k)
			}
		}
		for k := range env {
			if strings.HasPrefix(k, "PCISTREAM") && k != strings.ToUpper(k) {
				t.Errorf("%s: env %s is not upper case", name, k)
			}
		}
	}
	if n < 6 {
		t.Errorf("found %d pcistream services, want the setup jobs and 3 processors", n)
	}
	for _, p := range processors {
		svc := svcs[p]
		if svc == nil {
			continue
		}
		if got := strList(svc["command"]); len(got) < 2 || !slices.Equal(got[:2], []string{"run", p}) {
			t.Errorf("%s: command %v, want [run %s ...]", p, got, p)
		}
		hc := strList(get(svc, "healthcheck", "test"))
		if len(hc) == 0 || hc[0] != "CMD" || !strings.Contains(strings.Join(hc, " "), "/readyz") {
			// Exec form: the distroless image has no shell.
			t.Errorf("%s: healthcheck %v, want exec form probing /readyz", p, hc)
		}
		deps, _ := svc["depends_on"].(map[string]any)
		for _, setup := range []string{"setup-topology", "setup-schemas"} {
			if str(get(deps, setup, "condition")) != "service_completed_successfully" {
				t.Errorf("%s does not wait for %s to complete", p, setup)
			}
		}
	}
	if got := strList(get(svcs["setup-topology"], "command")); !slices.Equal(got, []string{"topology", "apply", "--reason", "compose setup"}) {
		t.Errorf("setup-topology command %v", got)
	}
	if got := strList(get(svcs["setup-schemas"], "command")); !slices.Equal(got, []string{"schemas", "register", "--reason", "compose setup"}) {
		t.Errorf("setup-schemas command %v", got)
	}
}

func TestComposeKafkaAndObjectLock(t *testing.T) {
	svcs := composeServices(t)
	env, _ := svcs["kafka"]["environment"].(map[string]any)
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
	} {
		if got := str(env[k]); got != want {
			t.Errorf("kafka %s = %q, want %q", k, got, want)
		}
	}
	if id := str(env["CLUSTER_ID"]); len(id) != 22 {
		t.Errorf("kafka CLUSTER_ID %q is not a 22-character base64 UUID", id)
	}
	cmd := strings.Join(strList(svcs["minio-init"]["command"]), "\n")
	for _, want := range []string{"mc mb", "--with-lock", "retention set --default COMPLIANCE"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("minio-init does not run %q", want)
		}
	}
	if str(get(svcs["auditor"], "depends_on", "minio-init", "condition")) != "service_completed_successfully" {
		t.Error("auditor starts before the object-lock bucket exists")
	}
}

// TestComposeConfig runs the compose tool's own validation when it is
// installed (docker compose or docker-compose).
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", "../docker-compose.yml", "config", "-q")
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command("docker-compose", "-f", "../docker-compose.yml", "config", "-q")
	} else {
		t.Skip("neither `docker compose` nor docker-compose is installed")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

// --- Dockerfile --------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	stages := strings.Split(text, "\nFROM ")
	if len(stages) < 3 { // preamble, build, final
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(stages)-1)
	}
	build, final := stages[len(stages)-2], stages[len(stages)-1]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-tags nodev", "-s -w", "./cmd/pcistream"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	base := strings.Fields(final)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final stage is %s, want distroless/static or scratch", base)
	}
	var user string
	for _, line := range strings.Split(final, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "USER":
			user = f[1]
		case "RUN", "SHELL":
			t.Errorf("final stage runs %q: it must have no shell", line)
		}
	}
	if !nonRootUser(user) {
		t.Errorf("final stage USER %q, want a numeric non-root uid", user)
	}
}

// --- Kubernetes --------------------------------------------------------------

type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string { return str(o.doc["kind"]) }
func (o k8sObject) name() string { return str(get(o.doc, "metadata", "name")) }

func k8sObjects(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var objs []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" || filepath.Base(f) == "secrets.example.yaml" {
			continue
		}
		for _, d := range readYAMLDocs(t, f) {
			objs = append(objs, k8sObject{file: f, doc: d})
		}
	}
	return objs
}

func TestK8sKustomizationListsEveryManifest(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "k8s/kustomization.yaml", &k)
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		b := filepath.Base(f)
		if b == "kustomization.yaml" || b == "secrets.example.yaml" {
			continue
		}
		if !slices.Contains(k.Resources, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

func TestK8sPodSecurity(t *testing.T) {
	var pods int
	for _, o := range k8sObjects(t) {
		switch o.kind() {
		case "Deployment", "StatefulSet", "Job", "DaemonSet":
		default:
			continue
		}
		pods++
		id := o.kind() + "/" + o.name()
		spec := get(o.doc, "spec", "template", "spec")
		if get(spec, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: pod runAsNonRoot not true", id)
		}
		if str(get(spec, "securityContext", "seccompProfile", "type")) != "RuntimeDefault" {
			t.Errorf("%s: pod seccomp profile not RuntimeDefault", id)
		}
		if get(spec, "automountServiceAccountToken") != false {
			t.Errorf("%s: mounts a service account token it does not need", id)
		}
		if uid, ok := get(spec, "securityContext", "runAsUser").(int); ok && uid == 0 {
			t.Errorf("%s: runAsUser 0", id)
		}
		for _, c := range append(list(get(spec, "containers")), list(get(spec, "initContainers"))...) {
			cid := id + " container " + str(get(c, "name"))
			sc := get(c, "securityContext")
			if get(sc, "readOnlyRootFilesystem") != true {
				t.Errorf("%s: readOnlyRootFilesystem not true", cid)
			}
			if get(sc, "allowPrivilegeEscalation") != false {
				t.Errorf("%s: allowPrivilegeEscalation not false", cid)
			}
			if get(sc, "privileged") == true {
				t.Errorf("%s: privileged", cid)
			}
			if !slices.Contains(strList(get(sc, "capabilities", "drop")), "ALL") {
				t.Errorf("%s: capabilities.drop lacks ALL", cid)
			}
			if uid, ok := get(sc, "runAsUser").(int); ok && uid == 0 {
				t.Errorf("%s: runAsUser 0", cid)
			}
			if get(c, "resources", "limits", "memory") == nil {
				t.Errorf("%s: no memory limit", cid)
			}
			for _, e := range list(get(c, "env")) {
				// Secrets come by reference, never inline.
				n := str(get(e, "name"))
				if (strings.Contains(n, "PASSWORD") || strings.Contains(n, "SECRET")) && get(e, "value") != nil {
					t.Errorf("%s: env %s has an inline value; use secretKeyRef", cid, n)
				}
			}
		}
	}
	if pods == 0 {
		t.Fatal("no workloads found")
	}
}

func TestK8sProcessors(t *testing.T) {
	objs := k8sObjects(t)
	pdbs := map[string]map[string]any{} // matchLabels app name -> pdb
	for _, o := range objs {
		if o.kind() == "PodDisruptionBudget" {
			pdbs[str(get(o.doc, "spec", "selector", "matchLabels", "app.kubernetes.io/name"))] = o.doc
		}
	}
	found := map[string]bool{}
	for _, o := range objs {
		if o.kind() != "StatefulSet" && o.kind() != "Deployment" {
			continue
		}
		containers := list(get(o.doc, "spec", "template", "spec", "containers"))
		if len(containers) != 1 {
			t.Errorf("%s: %d containers, want 1", o.name(), len(containers))
			continue
		}
		c := containers[0]
		args := strList(get(c, "args"))
		if len(args) < 2 || args[0] != "run" {
			t.Errorf("%s: args %v, want [run PROCESSOR ...]", o.name(), args)
			continue
		}
		proc := args[1]
		found[proc] = true
		app := str(get(o.doc, "spec", "template", "metadata", "labels", "app.kubernetes.io/name"))
		if str(get(o.doc, "spec", "selector", "matchLabels", "app.kubernetes.io/name")) != app {
			t.Errorf("%s: selector does not match the pod labels", o.name())
		}
		if pdbs[app] == nil {
			t.Errorf("%s: no PodDisruptionBudget selects %s", o.name(), app)
		}
		var metricsPort bool
		for _, p := range list(get(c, "ports")) {
			if str(get(p, "name")) == "metrics" && get(p, "containerPort") == 9464 {
				metricsPort = true
			}
		}
		if !metricsPort {
			t.Errorf("%s: no metrics port 9464", o.name())
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := str(get(c, probe, "httpGet", "path")); got != path {
				t.Errorf("%s: %s path %q, want %s", o.name(), probe, got, path)
			}
			if got := str(get(c, probe, "httpGet", "port")); got != "metrics" && got != "9464" {
				t.Errorf("%s: %s port %q, want the metrics port", o.name(), probe, got)
			}
		}
		// Least privilege: only the processes that tokenize hold the
		// token keys.
		var keyring bool
		for _, v := range list(get(o.doc, "spec", "template", "spec", "volumes")) {
			if str(get(v, "secret", "secretName")) == "pcistream-keyring" {
				keyring = true
			}
		}
		if tokenizes := proc == "tokenizer" || proc == "gateway"; keyring != tokenizes {
			t.Errorf("%s: mounts the keyring = %v, want %v", o.name(), keyring, tokenizes)
		}
	}
	for _, p := range processors {
		if !found[p] {
			t.Errorf("no workload runs %s", p)
		}
	}
}

func TestK8sNetworkPolicy(t *testing.T) {
	for _, o := range k8sObjects(t) {
		if o.kind() != "NetworkPolicy" {
			continue
		}
		if str(get(o.doc, "spec", "podSelector", "matchLabels", "app.kubernetes.io/part-of")) != "pcistream" {
			continue
		}
		types := strList(get(o.doc, "spec", "policyTypes"))
		if !slices.Contains(types, "Ingress") || !slices.Contains(types, "Egress") {
			t.Errorf("NetworkPolicy %s: policyTypes %v, want Ingress and Egress", o.name(), types)
		}
		for _, rule := range list(get(o.doc, "spec", "ingress")) {
			if len(list(get(rule, "from"))) == 0 {
				t.Errorf("NetworkPolicy %s: an ingress rule admits every source", o.name())
			}
		}
		return
	}
	t.Fatal("no NetworkPolicy selects pcistream pods")
}

// --- Prometheus --------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestPrometheusRules(t *testing.T) {
	var rf ruleFile
	readYAML(t, "prometheus/rules.yml", &rf)
	alerts := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = r.Expr
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a severity label and summary and description annotations", r.Alert)
			}
			for _, m := range metricsIn(r.Expr) {
				if !knownMetrics[m] {
					t.Errorf("%s: expr names %s, which pcistream does not export", r.Alert, m)
				}
			}
		}
	}
	// The alerts the design promises, each on the metric it is about.
	for alert, metric := range map[string]string{
		"PCIStreamPANLeakFound":          "pcistream_scan_findings",
		"PCIStreamAuditWriteFailures":    "pcistream_audit_write_failures_total",
		"PCIStreamConsumerLagHigh":       "pcistream_consumer_lag",
		"PCIStreamTxnAbortsSpike":        "pcistream_txn_aborts_total",
		"PCIStreamAuditorNotProgressing": "pcistream_audit_chain_head",
		"PCIStreamAuditorDown":           "up",
		"PCIStreamGatewayFailingClosed":  "pcistream_gateway_requests_total",
		"PCIStreamGatewaySlow":           "payment_context_isolation_duration_seconds",
		"PCIStreamGatewayDown":           "up",
	} {
		expr, ok := alerts[alert]
		if !ok {
			t.Errorf("alert %s missing", alert)
			continue
		}
		if !strings.Contains(expr, metric) {
			t.Errorf("alert %s does not use %s", alert, metric)
		}
	}
	if !strings.Contains(alerts["PCIStreamPANLeakFound"], "pcistream_pans_leaked_total") {
		t.Error("PAN leak alert ignores pcistream_pans_leaked_total")
	}
}

// TestPromtool checks the rules, runs their unit tests
// (prometheus/rules_test.yml) and checks prometheus.yml, when promtool is
// installed (Debian package prometheus).
func TestPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("promtool", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	run("prometheus", "check", "rules", "rules.yml")
	run("prometheus", "test", "rules", "rules_test.yml")

	// prometheus.yml names the rules by their path inside the container.
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("prometheus/rules.yml")
	if !bytes.Contains(b, []byte("/etc/prometheus/rules.yml")) {
		t.Fatal("prometheus.yml does not load /etc/prometheus/rules.yml")
	}
	tmp := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(b, []byte("/etc/prometheus/rules.yml"), []byte(abs)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(".", "check", "config", tmp)
}

func TestPrometheusScrapesProcessors(t *testing.T) {
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &pc)
	targets := map[string]string{}
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "pcistream" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = st.Labels["service"]
			}
		}
	}
	for _, p := range processors {
		// The auditor alerts select on job="pcistream" and service.
		if targets[p+":9464"] != p {
			t.Errorf("job pcistream does not scrape %s:9464 with service=%s", p, p)
		}
	}
}

// --- Grafana -----------------------------------------------------------------

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/dashboards/pcistream.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" {
		t.Error("dashboard has no uid: provisioning would duplicate it")
	}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricsIn(tg.Expr) {
				if !knownMetrics[m] {
					t.Errorf("panel %q queries %s, which pcistream does not export", p.Title, m)
				}
				used[m] = true
			}
		}
	}
	var missing []string
	for _, m := range dashboardMetrics {
		if !used[m] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		t.Errorf("dashboard shows no panel for %v", missing)
	}
	if !bytes.Contains(b, []byte("histogram_quantile(0.99")) {
		t.Error("dashboard lacks the S3 write p99")
	}
	if !bytes.Contains(b, []byte("payment_context_isolation_duration_seconds_bucket")) {
		t.Error("dashboard lacks the gateway's published latency histogram")
	}

	var ds struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("datasource provisioning: %+v", ds.Datasources)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/pcistream.yml", &prov)
	svcs := composeServices(t)
	var mounted bool
	for _, v := range strList(svcs["grafana"]["volumes"]) {
		if len(prov.Providers) == 1 && strings.HasPrefix(v, "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path) {
			mounted = true
		}
	}
	if !mounted {
		t.Error("compose does not mount deploy/grafana/dashboards where the provider looks")
	}
}

func TestMetricsIn(t *testing.T) {
	got := metricsIn(`histogram_quantile(0.99, sum by (le) (rate(pcistream_s3_write_seconds_bucket[5m]))) > pcistream_foo_total`)
	if !slices.Equal(got, []string{"pcistream_s3_write_seconds", "pcistream_foo_total"}) {
		t.Fatalf("metricsIn = %v", got)
	}
}

// The tokenizer's and the gateway's idempotency state stores are on a
// persistent volume per pod, mounted where --state-dir (PCISTREAM_STATE_DIR)
// points: a restarted pod then replays only the changelog tail instead of
// the whole window.
func TestK8sStateVolumes(t *testing.T) {
	for _, proc := range []string{"tokenizer", "gateway"} {
		t.Run(proc, func(t *testing.T) {
			var sts map[string]any
			for _, o := range k8sObjects(t) {
				if o.kind() == "StatefulSet" && o.name() == "pcistream-"+proc {
					sts = o.doc
				}
			}
			if sts == nil {
				t.Fatal("no StatefulSet pcistream-" + proc)
			}
			checkStateVolume(t, sts)
		})
	}
}

func checkStateVolume(t *testing.T, sts map[string]any) {
	claims := map[string]map[string]any{}
	for _, c := range list(get(sts, "spec", "volumeClaimTemplates")) {
		claims[str(get(c, "metadata", "name"))] = c.(map[string]any)
	}
	c := list(get(sts, "spec", "template", "spec", "containers"))[0]
	dir := ""
	for _, e := range list(get(c, "env")) {
		if str(get(e, "name")) == "PCISTREAM_STATE_DIR" {
			dir = str(get(e, "value"))
		}
	}
	for i, a := range strList(get(c, "args")) {
		if a == "--state-dir" && i+1 < len(strList(get(c, "args"))) {
			dir = strList(get(c, "args"))[i+1]
		} else if v, ok := strings.CutPrefix(a, "--state-dir="); ok {
			dir = v
		}
	}
	if dir == "" || !filepath.IsAbs(dir) {
		t.Fatalf("PCISTREAM_STATE_DIR (or --state-dir) = %q, want an absolute path on the state volume", dir)
	}
	var mounted string
	for _, m := range list(get(c, "volumeMounts")) {
		if str(get(m, "mountPath")) == dir {
			mounted = str(get(m, "name"))
			if get(m, "readOnly") == true {
				t.Errorf("the state volume is mounted read-only")
			}
		}
	}
	if mounted == "" {
		t.Fatalf("nothing is mounted at the state dir %s (the store would land on the read-only root or in memory)", dir)
	}
	claim, ok := claims[mounted]
	if !ok {
		t.Fatalf("volume %q at %s is not a volumeClaimTemplate (a persistent volume per pod)", mounted, dir)
	}
	for _, v := range list(get(sts, "spec", "template", "spec", "volumes")) {
		if str(get(v, "name")) == mounted {
			t.Errorf("pod volume %q shadows the claim template of the same name", mounted)
		}
	}
	if !slices.Contains(strList(get(claim, "spec", "accessModes")), "ReadWriteOnce") {
		t.Errorf("state claim access modes %v, want ReadWriteOnce (one store per worker)", strList(get(claim, "spec", "accessModes")))
	}
	if str(get(claim, "spec", "resources", "requests", "storage")) == "" {
		t.Error("state claim requests no storage size")
	}
}
