package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

// promServer is a real Prometheus (Debian's prometheus package) scraping
// one target every second, on loopback, with its data in a temp dir. It runs
// as a child of the test like the collector does (killed at the end, its
// log printed on failure).
type promServer struct {
	addr string
	proc *testenv.Collector
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs the prometheus program (Debian package prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: otelcol-kernel
    static_configs:
      - targets: [%q]
`, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freeLoopbackAddr(t)}
	p.proc = testenv.StartCollector(t, bin, testenv.CollectorOptions{
		Args: []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + p.addr, "--log.level=warn"},
		Poll: 500 * time.Millisecond,
	})
	p.proc.WaitUntil(t, "prometheus is ready on "+p.addr, waitFor, func() (bool, string) {
		body, err := get("http://" + p.addr + "/-/ready")
		return err == nil && strings.Contains(body, "Ready"), fmt.Sprint(body, err)
	})
	return p
}

// sample is one instant-vector element of a query.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

func (s sample) value() float64 {
	str, _ := s.Value[1].(string)
	v, _ := strconv.ParseFloat(str, 64)
	return v
}

// query runs an instant query; at 0 means now.
func (p *promServer) query(t *testing.T, q string, at float64) []sample {
	t.Helper()
	u := "http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q)
	if at != 0 {
		u += "&time=" + strconv.FormatFloat(at, 'f', 3, 64)
	}
	body, err := get(u)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Status != "success" {
		t.Fatalf("query %s: %v %s %s", q, err, resp.Error, body)
	}
	return resp.Data.Result
}

// testIncreaseSeesTheFirstLinkChange is the alert's view: on a real
// Prometheus scraping the distribution, increase() over a window holding the
// first change of a new interface is 1. It would be 0 if the series first
// appeared already at 1, as counters did before they were reported from 0.
func testIncreaseSeesTheFirstLinkChange(t *testing.T, promTarget string) {
	prom := startPrometheus(t, promTarget)
	ifname := "inc" + strconv.Itoa(os.Getpid()%100000)
	addLink(t, ifname)
	series := fmt.Sprintf(`kernel_netdev_link_changes_total{network_interface_name=%q,kernel_link_change_type="admin_up"}`, ifname)

	// Known at 0 before any change, for a few scrapes.
	prom.proc.WaitUntil(t, "the new interface's admin_up series at 0", waitFor, func() (bool, string) {
		got := prom.query(t, "count_over_time("+series+"[1m])", 0)
		if len(got) == 1 && got[0].value() >= 3 {
			now := prom.query(t, series, 0)
			return len(now) == 1 && now[0].value() == 0, fmt.Sprint(now)
		}
		return false, fmt.Sprint(got)
	})
	run(t, "ip", "link", "set", "dev", ifname, "up")
	var lastScrape float64
	prom.proc.WaitUntil(t, "the admin_up change scraped", waitFor, func() (bool, string) {
		got := prom.query(t, series, 0)
		if len(got) == 1 && got[0].value() == 1 {
			// The time of that sample, not of the query.
			if ts := prom.query(t, "timestamp("+series+")", 0); len(ts) == 1 {
				lastScrape = ts[0].value()
				return true, ""
			}
		}
		return false, fmt.Sprint(got)
	})
	// Evaluated at that sample, so that Prometheus' extrapolation past the
	// last sample does not blur the figure (the series starts at 0, so none
	// is made before its first sample either).
	got := prom.query(t, "increase("+series+"[2m])", lastScrape)
	if len(got) != 1 || got[0].value() != 1 {
		t.Fatalf("increase(%s[2m]) = %v, want exactly 1", series, got)
	}
	t.Logf("increase over the window holding the first change: %v", got[0].value())
}
