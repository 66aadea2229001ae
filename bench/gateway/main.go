// Command gateway benchmarks the HTTP gateway (`pcistream run gateway`) with
// wrk, a real HTTP load generator (Debian package wrk), against the dev stack
// (`pcistream dev`), each in its own process: requests per second, requests
// per CPU-second of the gateway process (per core), and latency p50/p99 from
// wrk, for POST /v1/payments and, as the baseline on the same server in the
// same run, the no-op route POST /v1/noop (same body, same TLS, same
// middleware, no validation and no Kafka). Two load shapes: saturation (as
// many requests as the connections allow) and paced: --rate requests/s
// offered on a fixed schedule, open loop (wrk 4 has no constant-rate mode;
// the script's delay() hands each free connection the next send time of its
// thread's schedule, so the offered rate does not fall when answers slow
// down, as a fixed think time would). wrk times a request from its actual
// send; sends that left more than 2 ms behind their scheduled time (every
// connection busy) are counted and reported, since their latency from the
// schedule would be higher than wrk's. With -background, the benchmark keeps
// that much CPU busy itself during the measured runs: the no-op route with
// and without it shows how much latency comes from sharing the cores alone.
//
//	go run ./bench/gateway -write bench/RESULTS.md
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- gateway:begin -->"
	endMarker   = "<!-- gateway:end -->"
)

type opts struct {
	bin       string
	duration  time.Duration
	threads   int
	conns     int
	rate      int
	rateConns int
	producers int
	bg        float64
	write     string
	profile   string
	memprof   string
	trace     string
	routes    []string
	shapes    []string
}

func main() {
	var o opts
	flag.StringVar(&o.bin, "bin", "", "pcistream binary (default: go build ./cmd/pcistream into a temp dir)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of each wrk run")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections of the saturation runs")
	flag.IntVar(&o.rate, "rate", 5000, "target requests/s of the paced runs")
	flag.IntVar(&o.rateConns, "rate-conns", 200, "wrk connections of the paced runs (enough to keep one free at each scheduled send)")
	flag.IntVar(&o.producers, "producers", 1, "gateway --producers")
	flag.Float64Var(&o.bg, "background", 0, "cores of CPU to keep busy in this process during each measured run, to show the effect of other load on the machine")
	flag.StringVar(&o.write, "write", "", "update the gateway section of this RESULTS.md")
	flag.StringVar(&o.profile, "cpuprofile", "", "write the gateway process's CPU profile (whole run, both routes) to this file")
	flag.StringVar(&o.memprof, "memprofile", "", "write the gateway process's allocation profile (whole run, both routes) to this file")
	flag.StringVar(&o.trace, "trace", "", "write a Go execution trace of the gateway's last seconds (the last run's) to this file")
	routes := flag.String("routes", "noop,payments", "routes to measure, comma-separated (payments alone, for a profile of payments only, prints no ratio)")
	shapes := flag.String("shapes", "saturation,paced", "load shapes to run, comma-separated")
	flag.Parse()
	o.routes = listFlag("routes", *routes, "noop", "payments")
	o.shapes = listFlag("shapes", *shapes, "saturation", "paced")
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("wrk not found: apt-get install -y wrk")
	}
	dir, err := os.MkdirTemp("", "pcistream-bench-gateway-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	md, err := run(o, dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(md)
	if o.write != "" {
		if err := writeSection(o.write, md); err != nil {
			log.Fatal(err)
		}
	}
}

// listFlag splits the comma-separated value of flag name and exits on a
// value that is not one of allowed.
func listFlag(name, value string, allowed ...string) []string {
	vals := strings.Split(value, ",")
	for _, v := range vals {
		if !slices.Contains(allowed, v) {
			log.Fatalf("-%s: unknown value %q: use %s, or several separated by commas", name, v, strings.Join(allowed, ", "))
		}
	}
	return vals
}

// proc is a child process the benchmark started.
type proc struct {
	cmd *exec.Cmd
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt) //nolint:errcheck
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck
		<-done
	}
}

// cpu returns the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func run(o opts, dir string) (string, error) {
	if o.bin == "" {
		o.bin = filepath.Join(dir, "pcistream")
		b := exec.Command("go", "build", "-o", o.bin, "./cmd/pcistream")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return "", fmt.Errorf("building pcistream (run from the repository root): %w", err)
		}
	}
	kafka, registry, s3, api, metrics := freeAddr(), freeAddr(), freeAddr(), freeAddr(), freeAddr()
	common := []string{"--brokers", kafka, "--registry-url", "http://" + registry, "--keyring", filepath.Join(dir, "keyring.json")}
	dev, err := start(o.bin, filepath.Join(dir, "dev.log"), "Ctrl-C to stop", append([]string{"dev", "--kafka-addr", kafka, "--registry-addr", registry,
		"--s3-addr", s3, "--data-dir", filepath.Join(dir, "dev")}, common...)...)
	if err != nil {
		return "", err
	}
	defer dev.stop()
	if out, err := exec.Command(o.bin, append([]string{"keys", "init"}, common...)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("keys init: %v: %s", err, out)
	}
	cert, key, err := writeCert(dir)
	if err != nil {
		return "", err
	}
	gw, err := start(o.bin, filepath.Join(dir, "gateway.log"), "", append([]string{"run", "gateway", "--listen", api, "--tls-cert", cert, "--tls-key", key,
		"--metrics-addr", metrics, "--bench-noop-route", "--log-level", "warn", "--max-in-flight", "4096",
		"--producers", strconv.Itoa(o.producers), "--transactional-id", "bench-gateway"}, append(profileArgs(o.profile, o.memprof, o.trace), common...)...)...)
	if err != nil {
		return "", err
	}
	defer gw.stop()
	if err := waitReady("http://"+metrics+"/readyz", 60*time.Second); err != nil {
		return "", err
	}
	url := "https://" + api
	load0 := loadAvg()
	// Warm up both routes (connections, producers, schema ids).
	for _, r := range o.routes {
		if _, err := wrk(o, dir, url, r, "warm", 4, 0, 3*time.Second, nil); err != nil {
			return "", err
		}
	}
	var rows []row
	for _, shape := range []struct {
		key   string
		name  string
		conns int
		rate  int
	}{
		{"saturation", "saturation", o.conns, 0},
		{"paced", fmt.Sprintf("paced at %d/s", o.rate), o.rateConns, o.rate},
	} {
		if !slices.Contains(o.shapes, shape.key) {
			continue
		}
		for _, route := range o.routes {
			before, err := scrapeServer("http://" + metrics + "/metrics")
			if err != nil {
				return "", err
			}
			res, err := wrk(o, dir, url, route, shape.name, shape.conns, shape.rate, o.duration, []*proc{gw, dev})
			if err != nil {
				return "", err
			}
			after, err := scrapeServer("http://" + metrics + "/metrics")
			if err != nil {
				return "", err
			}
			rows = append(rows, row{shape: shape.name, route: route, conns: shape.conns, rate: shape.rate, res: res,
				srv: serverLatency(before, after)})
		}
	}
	c := counts{loadBefore: load0, loadAfter: loadAvg()}
	body, err := fetchMetrics("http://" + metrics + "/metrics")
	if err != nil {
		return "", err
	}
	for _, m := range []struct {
		dst    *float64
		series string
	}{
		{&c.accepted, `pcistream_gateway_requests_total{route="payments",status="202"}`},
		{&c.txns, `pcistream_gateway_produce_duration_seconds_count{outcome="committed"}`},
		{&c.txnSecs, `pcistream_gateway_produce_duration_seconds_sum{outcome="committed"}`},
	} {
		if *m.dst, err = counter(body, m.series); err != nil {
			return "", err
		}
	}
	return report(o, rows, c), nil
}

// start runs the binary with args, its output in logPath, and waits for
// ready in its stdout when given.
func start(bin, logPath, ready string, args ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = lf
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting pcistream %s: %w", args[0], err)
	}
	p := &proc{cmd: cmd}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			fmt.Fprintln(lf, sc.Text())
			if !once && ready != "" && strings.Contains(sc.Text(), ready) {
				once = true
				close(seen)
			}
		}
	}()
	if ready == "" {
		return p, nil
	}
	select {
	case <-seen:
		return p, nil
	case <-time.After(90 * time.Second):
		p.stop()
		return nil, fmt.Errorf("pcistream %s did not start in 90s (see %s)", args[0], logPath)
	}
}

func waitReady(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("gateway not ready at %s after %s", url, d)
}

// result is one wrk run.
type result struct {
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	Status        int64   `json:"errors_status"`
	Connect       int64   `json:"errors_connect"`
	Read          int64   `json:"errors_read"`
	Timeout       int64   `json:"errors_timeout"`
	P50, P90, P99 float64 `json:"-"`
	P50US         float64 `json:"p50_us"`
	P90US         float64 `json:"p90_us"`
	P99US         float64 `json:"p99_us"`
	MaxUS         float64 `json:"max_us"`
	// Late counts sends more than 2 ms behind their scheduled time (paced
	// runs); MaxLagMS is the largest lag.
	Late                       int64   `json:"late"`
	MaxLagMS                   float64 `json:"max_lag_ms"`
	gwCPU, kCPU, wrkCPU, bgCPU time.Duration
}

type row struct {
	shape, route string
	conns, rate  int
	res          result
	srv          serverQuantiles
}

// serverQuantiles are the gateway's own latency histograms over one wrk
// run (bucket upper bounds, seconds): the time a payment spent in the
// gateway (handling), its Kafka transactions' durations, and the commit
// phases around them (a request's queue wait, a transaction's key check,
// its local apply), each as p50 and p99.
type serverQuantiles struct {
	handle, txn, queue, check, apply [2]float64
}

// serverHists are the histograms serverQuantiles reads.
type serverHists struct{ handle, txn, queue, check, apply histogram }

func scrapeServer(url string) (serverHists, error) {
	body, err := fetchMetrics(url)
	if err != nil {
		return serverHists{}, err
	}
	var h serverHists
	for _, m := range []struct {
		dst          *histogram
		name, labels string
	}{
		{&h.handle, "payment_context_isolation_duration_seconds", `route="payments"`},
		{&h.txn, "pcistream_gateway_produce_duration_seconds", `outcome="committed"`},
		{&h.queue, "pcistream_gateway_commit_phase_duration_seconds", `phase="queue"`},
		{&h.check, "pcistream_gateway_commit_phase_duration_seconds", `phase="key_check"`},
		{&h.apply, "pcistream_gateway_commit_phase_duration_seconds", `phase="apply"`},
	} {
		*m.dst = parseHistogram(body, m.name, m.labels)
	}
	return h, nil
}

func serverLatency(before, after serverHists) serverQuantiles {
	q := func(a, b histogram) [2]float64 { return [2]float64{a.quantile(b, 0.5), a.quantile(b, 0.99)} }
	return serverQuantiles{handle: q(after.handle, before.handle), txn: q(after.txn, before.txn),
		queue: q(after.queue, before.queue), check: q(after.check, before.check), apply: q(after.apply, before.apply)}
}

// script is the wrk Lua script: unique payment ids and Idempotency-Keys per
// thread and request (every payment is new and is written to Kafka), the
// same body on the no-op route, and a JSON summary line at the end.
const script = `
local counter = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
request = function()
  counter = counter + 1
  local id = "%s-" .. tid .. "-" .. counter
  local body = '{"payment_id":"' .. id .. '","event_type":"AUTHORIZATION","pan":"4111111111111111","expiry_month":12,"expiry_year":2030,"cvv":"123","cardholder_name":"Bench Cardholder","amount_minor":1999,"currency":"EUR","merchant_id":"m-bench","metadata":{"order":"o-' .. counter .. '"}}'
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json", ["Idempotency-Key"] = id}, body)
end
%s
late = 0
maxlag = 0
done = function(summary, latency, requests)
  local lateAll, lagAll = 0, 0
  for _, t in ipairs(threads) do
    lateAll = lateAll + (t:get("late") or 0)
    lagAll = math.max(lagAll, t:get("maxlag") or 0)
  end
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"errors_status":%%d,"errors_connect":%%d,"errors_read":%%d,"errors_timeout":%%d,"p50_us":%%f,"p90_us":%%f,"p99_us":%%f,"max_us":%%f,"late":%%d,"max_lag_ms":%%f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, lateAll, lagAll))
end
`

// pacing is the paced runs' delay(): each thread keeps a schedule of one
// send every period ms (threads / rate) and gives each connection that is
// ready to send the next slot of it, so the offered rate holds whatever the
// answers' latency, as long as a connection is free; a slot already past is
// sent at once and counted when more than 2 ms late. LuaJIT's ffi reads the
// monotonic clock (os.clock is CPU time, os.time whole seconds).
const pacing = `
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pcistream_ts;
int clock_gettime(int clk, pcistream_ts *tp);
]]
local ts = ffi.new("pcistream_ts")
local function nowMS()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local period = %g
local slot = nil
function delay()
  local now = nowMS()
  slot = (slot or now) + period
  local d = slot - now
  if d < 0 then
    if d < -2 then late = late + 1 end
    maxlag = math.max(maxlag, -d)
    return 0
  end
  return math.floor(d + 0.5)
end
`

func wrk(o opts, dir, url, route, shape string, conns, rate int, d time.Duration, procs []*proc) (result, error) {
	delayFn := ""
	if rate > 0 {
		delayFn = fmt.Sprintf(pacing, 1000*float64(o.threads)/float64(rate))
	}
	prefix := fmt.Sprintf("b%d%s%s", time.Now().UnixNano()%1e9, route[:1], strings.Fields(shape)[0][:1])
	path := filepath.Join(dir, "wrk.lua")
	if err := os.WriteFile(path, fmt.Appendf(nil, script, prefix, "/v1/"+route, delayFn), 0o600); err != nil {
		return result{}, err
	}
	var before []time.Duration
	for _, p := range procs {
		before = append(before, p.cpu())
	}
	self := selfCPU()
	if o.bg > 0 && procs != nil {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		burn(ctx, o.bg)
	}
	cmd := exec.Command("wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(int(d.Seconds()))+"s",
		"--timeout", "10s", "-s", path, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	var res result
	for _, l := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(l, "WRKJSON "); ok {
			if err := json.Unmarshal([]byte(j), &res); err != nil {
				return result{}, fmt.Errorf("wrk summary: %w", err)
			}
		}
	}
	if res.Requests == 0 {
		return result{}, fmt.Errorf("wrk printed no summary: %s", out)
	}
	// wrk's own CPU shows how much of the machine the load generator takes
	// from the two processes it measures.
	res.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	// This process does nothing else while wrk runs, so its CPU is the
	// background load.
	res.bgCPU = selfCPU() - self
	if len(procs) == 2 {
		res.gwCPU, res.kCPU = procs[0].cpu()-before[0], procs[1].cpu()-before[1]
	}
	return res, nil
}

// counter reads the value of series from a metrics exposition (0 when
// absent).
func counter(body, series string) (float64, error) {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, nil
}

// counts are the gateway's own counters at the end of the run.
type counts struct {
	accepted, txns, txnSecs float64
	loadBefore, loadAfter   string
}

// loadAvg is the machine's load average (1, 5, 15 minutes).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func report(o opts, rows []row, c counts) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n## HTTP gateway (`pcistream run gateway`) with wrk\n\n", beginMarker)
	fmt.Fprintf(&sb, "Machine: %s, %d cores shared with other jobs, %s %s/%s, wrk 4.1 (Debian). Date: %s.\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	bg := ""
	if o.bg > 0 {
		bg = fmt.Sprintf(" -background %g", o.bg)
	}
	fmt.Fprintf(&sb, "Command: `go run ./bench/gateway -duration %s -threads %d -conns %d -rate %d -rate-conns %d -producers %d -routes %s -shapes %s%s`.\n\n",
		o.duration, o.threads, o.conns, o.rate, o.rateConns, o.producers, strings.Join(o.routes, ","), strings.Join(o.shapes, ","), bg)
	fmt.Fprintf(&sb, "Load average (1, 5, 15 min) when the measured runs started: %s; when they ended: %s.\n\n", c.loadBefore, c.loadAfter)
	sb.WriteString("Three processes on the same 2 cores: `pcistream dev` (kfake Kafka + registry), `pcistream run gateway` (TLS, " +
		"group-committed Kafka transactions), and wrk. Every payment request carries a new payment id and " +
		"Idempotency-Key, so each one is validated, fingerprinted, looked up in the local Idempotency-Key state (Pebble), " +
		"Avro-encoded, checked again by the committer once per transaction (the state caught up to the partitions' " +
		"high watermarks listed after the batch formed, while the batch is produced) and committed to payments.raw with its idempotency entry before its 202. The baseline is `POST /v1/noop` on the same server in the same run: same body, " +
		"TLS, in-flight budget, metrics and tracing middleware, no validation and no Kafka.\n\n")
	sb.WriteString("| load | route | conns | requests/s | sent > 2 ms late | non-2xx | gateway CPU | requests per gateway CPU-second | ratio to no-op | kfake CPU | wrk CPU | p50 | p90 | p99 |\n")
	sb.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var noop float64
	for _, r := range rows {
		secs := float64(r.res.DurationUS) / 1e6
		rps := float64(r.res.Requests) / secs
		perCore := float64(r.res.Requests) / r.res.gwCPU.Seconds()
		ratio := "1.00 (baseline)"
		if r.route == "payments" {
			ratio = "- (no baseline run)"
		}
		if r.route == "noop" {
			noop = perCore
		} else if noop > 0 {
			ratio = fmt.Sprintf("%.2f", perCore/noop)
		}
		late := "-"
		if r.rate > 0 {
			late = fmt.Sprintf("%.2f%% (max %.0f ms)", 100*float64(r.res.Late)/float64(r.res.Requests), r.res.MaxLagMS)
		}
		fmt.Fprintf(&sb, "| %s | %s | %d | %.0f | %s | %d | %.2f cores | %.0f | %s | %.2f cores | %.2f cores | %.2f ms | %.2f ms | %.2f ms |\n",
			r.shape, "/v1/"+r.route, r.conns, rps, late, r.res.Status+r.res.Timeout, r.res.gwCPU.Seconds()/secs, perCore, ratio,
			r.res.kCPU.Seconds()/secs, r.res.wrkCPU.Seconds()/secs, r.res.P50US/1000, r.res.P90US/1000, r.res.P99US/1000)
	}
	if o.bg > 0 {
		var used []string
		for _, r := range rows {
			used = append(used, fmt.Sprintf("%.2f", r.res.bgCPU.Seconds()/(float64(r.res.DurationUS)/1e6)))
		}
		fmt.Fprintf(&sb, "\nBackground load (`-background %g`, this benchmark's own process) during the measured runs, row by row: %s cores.\n", o.bg, strings.Join(used, ", "))
	}
	var inside []string
	for _, r := range rows {
		if r.route == "payments" {
			s := r.srv
			inside = append(inside, fmt.Sprintf("%s: a payment's handling p50 <= %s, p99 <= %s; in it, the wait for a transaction %s / %s, "+
				"the key check left after the produce %s / %s, the whole Kafka transaction %s / %s, the local apply %s / %s (p50 / p99).",
				r.shape, ms(s.handle[0]), ms(s.handle[1]), ms(s.queue[0]), ms(s.queue[1]), ms(s.check[0]), ms(s.check[1]),
				ms(s.txn[0]), ms(s.txn[1]), ms(s.apply[0]), ms(s.apply[1])))
		}
	}
	fmt.Fprintf(&sb, "\nInside the gateway (its own histograms; bucket upper bounds, so coarse): %s\n", strings.Join(inside, " "))
	fmt.Fprintf(&sb, "Payments the gateway answered 202 over the whole run (its own counter, warm-up included): %.0f.\n", c.accepted)
	if c.txns > 0 {
		fmt.Fprintf(&sb, "Kafka transactions committed: %.0f (%.1f payments per transaction, %.2f ms each on average).\n",
			c.txns, c.accepted/c.txns, 1000*c.txnSecs/c.txns)
	}
	sb.WriteString("Requests per gateway CPU-second is requests/s per core of the gateway process (CPU from /proc, user+system). " +
		"Targets: p99 under 12 ms at 5,000 requests/s; at least 0.5x the no-op handler's requests per core. " +
		"The machine is shared with other agents' builds and tests; single numbers move by 20-30% between runs.\n")
	sb.WriteString(endMarker + "\n")
	return sb.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// writeCert writes a self-signed server certificate for 127.0.0.1.
func writeCert(dir string) (string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	cert, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return cert, keyPath, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// writeSection replaces (or appends) the gateway section of RESULTS.md.
func writeSection(path, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + md + s[j+len(endMarker)+1:]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + md
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// profileArgs asks the gateway for a CPU profile, an allocation profile
// and an execution trace, each when its path is set.
func profileArgs(cpu, mem, trace string) []string {
	var args []string
	for _, p := range []struct{ flag, path string }{{"--bench-cpuprofile", cpu}, {"--bench-memprofile", mem}, {"--bench-trace", trace}} {
		if p.path == "" {
			continue
		}
		abs, err := filepath.Abs(p.path)
		if err != nil {
			abs = p.path
		}
		args = append(args, p.flag, abs)
	}
	return args
}

// histogram is a Prometheus histogram's cumulative bucket counts by upper
// bound (seconds), scraped from the gateway.
type histogram map[float64]float64

// fetchMetrics returns the Prometheus text exposition at url.
func fetchMetrics(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// parseHistogram reads the buckets of series (name_bucket{labels,le=...})
// from a metrics exposition.
func parseHistogram(body, name, labels string) histogram {
	h := histogram{}
	prefix := name + "_bucket{" + labels + `,le="`
	for _, l := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(l, prefix)
		if !ok {
			continue
		}
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = math.Inf(1), nil
		}
		n, err2 := strconv.ParseFloat(val, 64)
		if err == nil && err2 == nil {
			h[bound] = n
		}
	}
	return h
}

// quantile is the upper bound of the bucket holding quantile q of the
// observations between before and h.
func (h histogram) quantile(before histogram, q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for b := range h {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := h[bounds[len(bounds)-1]] - before[bounds[len(bounds)-1]]
	for _, b := range bounds {
		if h[b]-before[b] >= q*total {
			return b
		}
	}
	return math.Inf(1)
}

// ms renders a bucket bound in milliseconds.
func ms(secs float64) string {
	if math.IsInf(secs, 1) || math.IsNaN(secs) {
		return "n/a"
	}
	return strconv.FormatFloat(secs*1000, 'g', 3, 64) + " ms"
}
