package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/netsim"
)

// A world is a cluster of real `meridian start` processes, several per
// region, on an emulated world network, with faults injected from outside:
// kill -9, SIGSTOP/SIGCONT, restarts, and partitions of every shape. A
// partition is made either through each process's run-time network control
// (POST /debug/netsim: every process drops what it would send across the
// cut), or, when the test runs as root with `ip` available, by putting
// every process in its own network namespace on a bridge and blackholing
// the routes between them (a cut the processes cannot see through).
//
// MERIDIAN_E2E_NETNS=0 turns namespaces off, =1 requires them.

type worldConfig struct {
	regions        []string
	nodesPerRegion int
	// scale multiplies the world's round trips (0.25: a quarter).
	scale float64
	// extra arguments for every `meridian start`.
	args []string
	// nodeArgs, if set, gives a node's own extra arguments.
	nodeArgs func(n *wnode) []string
}

type world struct {
	t       *testing.T
	cfg     worldConfig
	bin     string
	root    string
	latency string
	rtt     map[string]map[string]time.Duration // scaled
	nodes   []*wnode
	ns      *netns // nil: faults through /debug/netsim

	mu     sync.Mutex
	faults []netsim.Fault // in force, in order
	// model mirrors the faults in force, to compute which links are cut.
	model *netsim.Network
}

type wnode struct {
	w      *world
	id     uint64
	region string
	raft   string
	resp   string
	http   string
	dir    string
	args   []string
	nsName string
	ip     string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	logf    *os.File
	client  *redis.Client
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// meridianBinary builds the binary once per test run.
func meridianBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meridian-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "meridian")
		binErr = goBuild(binPath)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// scaledMatrix writes the world matrix of the given regions, scaled, to a
// file and returns it with the scaled round trips.
func scaledMatrix(t *testing.T, dir string, regions []string, scale float64) (string, map[string]map[string]time.Duration) {
	t.Helper()
	world := netsim.WorldMatrix()
	rtt := map[string]map[string]time.Duration{}
	js := map[string]map[string]float64{}
	for i, a := range regions {
		rtt[a] = map[string]time.Duration{}
		js[a] = map[string]float64{}
		for j, b := range regions {
			if i == j {
				continue
			}
			d, ok := world.RTT(a, b)
			if !ok {
				t.Fatalf("no world round trip between %s and %s", a, b)
			}
			d = time.Duration(float64(d) * scale)
			rtt[a][b] = d
			if j > i {
				js[a][b] = float64(d) / float64(time.Millisecond)
			}
		}
	}
	data, _ := json.Marshal(map[string]any{"regions": regions, "rtt_ms": js})
	path := filepath.Join(dir, "latency.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, rtt
}

// maxRTT is the largest round trip between the world's regions.
func (w *world) maxRTT() time.Duration {
	var m time.Duration
	for _, row := range w.rtt {
		for _, d := range row {
			m = max(m, d)
		}
	}
	return m
}

func useNetns(t *testing.T) bool {
	switch os.Getenv("MERIDIAN_E2E_NETNS") {
	case "0":
		return false
	case "1":
		if err := netnsAvailable(); err != nil {
			t.Fatalf("MERIDIAN_E2E_NETNS=1 but network namespaces are not available: %v", err)
		}
		return true
	}
	return netnsAvailable() == nil
}

// newWorld starts the cluster and waits until every node is registered and
// every node's HTTP API answers. Every process is killed, and every
// namespace removed, when the test ends; a process left running fails it.
func newWorld(t *testing.T, cfg worldConfig) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	if cfg.nodesPerRegion == 0 {
		cfg.nodesPerRegion = 2
	}
	if cfg.scale == 0 {
		cfg.scale = 0.25
	}
	w := &world{t: t, cfg: cfg, bin: meridianBinary(t), root: t.TempDir()}
	w.latency, w.rtt = scaledMatrix(t, w.root, cfg.regions, cfg.scale)
	var err error
	if w.model, err = netsim.New(netsim.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.model.Close)
	if useNetns(t) {
		ns, err := newNetns(len(cfg.regions) * cfg.nodesPerRegion)
		if err != nil {
			t.Fatalf("network namespaces: %v", err)
		}
		w.ns = ns
	}
	var peers []string
	id := uint64(0)
	for _, r := range cfg.regions {
		for range cfg.nodesPerRegion {
			id++
			n := &wnode{w: w, id: id, region: r, dir: filepath.Join(w.root, fmt.Sprintf("n%d", id))}
			if w.ns != nil {
				n.nsName, n.ip = w.ns.name(int(id)), w.ns.ip(int(id))
				n.raft, n.resp, n.http = n.ip+":7400", n.ip+":6379", n.ip+":8080"
			} else {
				n.raft, n.resp, n.http = freeAddr(t), freeAddr(t), freeAddr(t)
			}
			w.model.AddNode(id, r)
			peers = append(peers, fmt.Sprintf("%d=%s@%s", id, r, n.raft))
			w.nodes = append(w.nodes, n)
		}
	}
	for _, n := range w.nodes {
		n.args = append([]string{"start", "--id", fmt.Sprint(n.id), "--region", n.region, "--data-dir", n.dir,
			"--listen", n.raft, "--resp", n.resp, "--http", n.http, "--peers", strings.Join(peers, ","),
			"--latency", w.latency, "--log-level", "warn"}, cfg.args...)
		if cfg.nodeArgs != nil {
			n.args = append(n.args, cfg.nodeArgs(n)...)
		}
		if w.ns != nil {
			// Namespaced addresses are not loopback ones: plaintext there
			// must be asked for (security is tested in security_test.go).
			n.args = append(n.args, "--insecure")
		}
		f, err := os.Create(filepath.Join(w.root, fmt.Sprintf("n%d.log", n.id)))
		if err != nil {
			t.Fatal(err)
		}
		n.logf = f
	}
	t.Cleanup(w.close)
	for _, n := range w.nodes {
		n.start()
	}
	// What each node last answered, for the failure message: the wait
	// has timed out with every process running and nothing in the logs.
	last := make([]string, len(w.nodes))
	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range w.nodes {
				t.Logf("node %d's last /v1/cluster before the registration wait ended: %s", n.id, last[i])
			}
		}
	})
	testutil.Eventually(w.t, 60*time.Second, "every node registered", func() bool {
		var st struct {
			Nodes []struct{ ID int } `json:"nodes"`
		}
		for i, n := range w.nodes {
			if err := n.getJSON("/v1/cluster", &st); err != nil {
				last[i] = err.Error()
				return false
			}
			last[i] = fmt.Sprintf("%d of %d nodes: %+v", len(st.Nodes), len(w.nodes), st.Nodes)
			if len(st.Nodes) != len(w.nodes) {
				return false
			}
		}
		return true
	})
	mode := "netsim control"
	if w.ns != nil {
		mode = "network namespaces"
	}
	t.Logf("world: %d processes in %v, round trips x%.2f, faults through %s", len(w.nodes), cfg.regions, cfg.scale, mode)
	return w
}

// close kills every process, reaps it, removes the namespaces and prints
// the logs of a failed test.
func (w *world) close() {
	if w.t.Failed() {
		w.dumpStreams()
	}
	for _, n := range w.nodes {
		n.kill()
		if n.client != nil {
			_ = n.client.Close()
		}
	}
	for _, n := range w.nodes {
		n.mu.Lock()
		if n.cmd != nil {
			w.t.Errorf("node %d's process outlived the test", n.id)
		}
		n.mu.Unlock()
	}
	if w.ns != nil {
		w.ns.close()
	}
	if w.t.Failed() || os.Getenv("MERIDIAN_E2E_LOGS") != "" {
		for _, n := range w.nodes {
			b, _ := os.ReadFile(n.logf.Name())
			if len(b) > 64<<10 {
				b = append([]byte("...\n"), b[len(b)-64<<10:]...)
			}
			w.t.Logf("--- node %d (%s) log:\n%s", n.id, n.region, b)
		}
	}
	for _, n := range w.nodes {
		_ = n.logf.Close()
	}
}

// dumpStreams logs every stream the running nodes send, with its state.
func (w *world) dumpStreams() {
	for _, n := range w.nodes {
		if !n.running() {
			continue
		}
		var st struct {
			Streams []map[string]any `json:"streams"`
		}
		if err := n.getJSON("/v1/cluster", &st); err != nil {
			continue
		}
		for _, s := range st.Streams {
			b, _ := json.Marshal(s)
			w.t.Logf("stream: %s", b)
		}
		return
	}
}

// inRegion lists the nodes of a region.
func (w *world) inRegion(region string) []*wnode {
	var out []*wnode
	for _, n := range w.nodes {
		if n.region == region {
			out = append(out, n)
		}
	}
	return out
}

func (w *world) node(id uint64) *wnode { return w.nodes[id-1] }

// --- processes ---

func (n *wnode) start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return
	}
	var cmd *exec.Cmd
	if n.nsName != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.nsName, n.w.bin}, n.args...)...)
	} else {
		cmd = exec.Command(n.w.bin, n.args...)
	}
	cmd.Stdout, cmd.Stderr = n.logf, n.logf
	if err := cmd.Start(); err != nil {
		n.w.t.Fatalf("start node %d: %v", n.id, err)
	}
	fmt.Fprintf(n.logf, "=== harness: started (pid %d) at %s\n", cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited, n.stopped = cmd, exited, false
}

// kill sends SIGKILL and reaps the process.
func (n *wnode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	fmt.Fprintf(n.logf, "=== harness: killed at %s\n", time.Now().Format(time.RFC3339Nano))
	n.cmd, n.stopped = nil, false
}

// pause sends SIGSTOP; resume sends SIGCONT.
func (n *wnode) pause() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !n.stopped {
		_ = n.cmd.Process.Signal(syscall.SIGSTOP)
		n.stopped = true
	}
}

func (n *wnode) resume() {
	n.mu.Lock()
	if n.cmd != nil && n.stopped {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		n.stopped = false
	}
	n.mu.Unlock()
	n.w.syncFaults(n)
}

// restart kills the process and starts it again on the same data.
func (n *wnode) restart() {
	n.kill()
	n.start()
	n.w.syncFaults(n)
}

func (n *wnode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.stopped
}

func (n *wnode) redis() *redis.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.client == nil {
		n.client = redis.NewClient(&redis.Options{Addr: n.resp, Protocol: 2, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, PoolSize: 32})
	}
	return n.client
}

// --- HTTP ---

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (n *wnode) getJSON(path string, out any) error {
	resp, err := httpClient.Get("http://" + n.http + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}

func (n *wnode) postJSON(path string, in, out any) error {
	return n.sendJSON(http.MethodPost, path, in, out)
}

func (n *wnode) sendJSON(method, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequest(method, "http://"+n.http+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// cli runs the meridian command line against node n.
func (n *wnode) cli(args ...string) (string, error) {
	out, err := exec.Command(n.w.bin, append(args, "--addr", n.http)...).CombinedOutput()
	return string(out), err
}

// anyUp returns a running node, preferring the given region.
func (w *world) anyUp(region string) *wnode {
	for _, pass := range []bool{true, false} {
		for _, n := range w.nodes {
			if n.running() && (!pass || n.region == region) {
				return n
			}
		}
	}
	w.t.Fatal("no node is running")
	return nil
}

// createKeyspace creates a keyspace through any running node.
func (w *world) createKeyspace(spec map[string]any) {
	w.t.Helper()
	testutil.Eventually(w.t, 60*time.Second, fmt.Sprintf("keyspace %v created", spec["name"]), func() bool {
		err := w.anyUp("").postJSON("/v1/keyspaces", spec, nil)
		if err != nil && strings.Contains(err.Error(), "keyspace_exists") {
			return true
		}
		if err != nil {
			w.t.Logf("create keyspace: %v", err)
		}
		return err == nil
	})
}

// --- faults ---

// fault puts a partition (or loss, delay) in force on every process.
func (w *world) fault(f netsim.Fault) {
	w.t.Helper()
	if err := f.Validate(); err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.faults = append(w.faults, f)
	_ = w.model.Apply(f)
	w.mu.Unlock()
	w.enforce()
}

// heal lifts every fault.
func (w *world) heal() {
	w.mu.Lock()
	w.faults = nil
	_ = w.model.Apply(netsim.Fault{Op: "reset"})
	w.mu.Unlock()
	w.enforce()
}

// enforce makes the network match the faults in force.
func (w *world) enforce() {
	if w.ns != nil {
		w.mu.Lock()
		cut := map[[2]int]bool{}
		for _, a := range w.nodes {
			for _, b := range w.nodes {
				if a != b && !w.model.Reachable(a.id, b.id) {
					cut[[2]int{int(a.id), int(b.id)}] = true
				}
			}
		}
		w.mu.Unlock()
		if err := w.ns.setCuts(cut); err != nil {
			w.t.Errorf("network namespaces: %v", err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, n := range w.nodes {
		if !n.running() {
			continue // synced when it runs again
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.syncFaults(n)
		}()
	}
	wg.Wait()
}

// syncFaults gives one process the faults in force (netsim mode).
func (w *world) syncFaults(n *wnode) {
	if w.ns != nil {
		return
	}
	w.mu.Lock()
	faults := slices.Clone(w.faults)
	w.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !n.running() {
			return
		}
		err := n.postJSON("/debug/netsim", netsim.Fault{Op: "reset"}, nil)
		for _, f := range faults {
			if err != nil {
				break
			}
			err = n.postJSON("/debug/netsim", f, nil)
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			w.t.Errorf("node %d: cannot set its network: %v", n.id, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ids returns the ids of nodes.
func ids(ns []*wnode) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}

// --- network namespaces ---

// netns is a bridge in the root namespace with one namespace per node,
// each on its own address; a cut between two nodes is a blackhole route in
// the sender's namespace.
type netns struct {
	tag    string
	subnet int
	bridge string
	n      int

	mu   sync.Mutex
	cuts map[[2]int]bool
}

func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return err
	}
	name := fmt.Sprintf("mprobe%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
	return nil
}

func ipRun(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// sweepStaleBridges removes the bridges of worlds whose test process was
// killed before it could remove them (its namespaces went with it, so the
// bridge has no port left). Such a bridge keeps its route to its subnet,
// and a new world on the same subnet could not be reached ("no route to
// host"). A live world's bridge always has its nodes' veths as ports.
func sweepStaleBridges() {
	ifs, err := net.Interfaces()
	if err != nil {
		return
	}
	for _, ifc := range ifs {
		if !strings.HasPrefix(ifc.Name, "mbr") {
			continue
		}
		ports, err := os.ReadDir(filepath.Join("/sys/class/net", ifc.Name, "brif"))
		if err != nil || len(ports) > 0 {
			continue
		}
		_ = exec.Command("ip", "link", "del", ifc.Name).Run()
	}
}

// freeSubnet picks a /24 in 10.213.100-249 that no interface of the root
// namespace has an address in.
func freeSubnet() (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if v4 := ipn.IP.To4(); v4 != nil && v4[0] == 10 && v4[1] == 213 {
				used[int(v4[2])] = true
			}
		}
	}
	var free []int
	for s := 100; s < 250; s++ {
		if !used[s] {
			free = append(free, s)
		}
	}
	if len(free) == 0 {
		return 0, fmt.Errorf("every subnet 10.213.100-249.0/24 is in use (bridges named mbr* left by earlier runs?)")
	}
	return free[rand.IntN(len(free))], nil
}

func newNetns(nodes int) (*netns, error) {
	sweepStaleBridges()
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	tag := strconv.Itoa(os.Getpid()%10000) + strconv.Itoa(rand.IntN(100))
	ns := &netns{tag: tag, subnet: subnet, bridge: "mbr" + tag, n: nodes, cuts: map[[2]int]bool{}}
	fail := func(err error) (*netns, error) {
		ns.close()
		return nil, err
	}
	if err := ipRun("link", "add", ns.bridge, "type", "bridge"); err != nil {
		return fail(err)
	}
	if err := ipRun("addr", "add", fmt.Sprintf("10.213.%d.1/24", ns.subnet), "dev", ns.bridge); err != nil {
		return fail(err)
	}
	if err := ipRun("link", "set", ns.bridge, "up"); err != nil {
		return fail(err)
	}
	for i := 1; i <= nodes; i++ {
		name, veth := ns.name(i), fmt.Sprintf("mv%s-%d", tag, i)
		steps := [][]string{
			{"netns", "add", name},
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name},
			{"link", "set", veth, "master", ns.bridge},
			{"link", "set", veth, "up"},
			{"-n", name, "addr", "add", ns.ip(i) + "/24", "dev", "eth0"},
			{"-n", name, "link", "set", "eth0", "up"},
			{"-n", name, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := ipRun(s...); err != nil {
				return fail(err)
			}
		}
	}
	return ns, nil
}

func (ns *netns) name(i int) string { return fmt.Sprintf("mer%s-%d", ns.tag, i) }
func (ns *netns) ip(i int) string   { return fmt.Sprintf("10.213.%d.%d", ns.subnet, 10+i) }

// setCuts makes the blackhole routes match cut (directed node pairs).
func (ns *netns) setCuts(cut map[[2]int]bool) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var errs []error
	for k := range ns.cuts {
		if !cut[k] {
			if err := ipRun("-n", ns.name(k[0]), "route", "del", "blackhole", ns.ip(k[1])+"/32"); err != nil {
				errs = append(errs, err)
			}
			delete(ns.cuts, k)
		}
	}
	for k := range cut {
		if !ns.cuts[k] {
			if err := ipRun("-n", ns.name(k[0]), "route", "add", "blackhole", ns.ip(k[1])+"/32"); err != nil {
				errs = append(errs, err)
				continue
			}
			ns.cuts[k] = true
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (ns *netns) close() {
	for i := 1; i <= ns.n; i++ {
		_ = exec.Command("ip", "netns", "del", ns.name(i)).Run()
	}
	_ = exec.Command("ip", "link", "del", ns.bridge).Run()
}

// --- small helpers ---

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// ctxT returns a context bounded by d.
func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
