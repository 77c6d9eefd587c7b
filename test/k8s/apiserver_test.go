package k8s

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// apiServer is a stand-in for the Kubernetes API server: enough of it for
// client-go informers over pods. It answers LIST, and WATCH in both forms
// client-go uses (the streaming "watch-list" with sendInitialEvents=true,
// which ends its initial events with a bookmark, and a plain watch that
// stays open without events), honours field and label selectors, and
// records every request. Anything else is logged and answered 404.
type apiServer struct {
	t    *testing.T
	url  string
	pods []corev1.Pod
	stop chan struct{}
	// watchList: serve sendInitialEvents=true. When false the server answers
	// it as an API server without the WatchList feature does (422), and
	// client-go falls back to LIST then WATCH.
	watchList bool

	mu       sync.Mutex
	requests []apiRequest
}

// apiRequest is one request, as RBAC sees it.
type apiRequest struct {
	Verb      string // list, watch, get, create, …
	APIGroup  string // "" for the core group
	Resource  string
	Namespace string
	Path      string
	Query     url.Values
}

func (r apiRequest) String() string {
	s := r.Verb + " " + r.Path
	if len(r.Query) > 0 {
		s += "?" + r.Query.Encode()
	}
	return s
}

const resourceVersion = "1000"

func newAPIServer(t *testing.T, pods ...corev1.Pod) *apiServer {
	s := &apiServer{t: t, pods: pods, stop: make(chan struct{}), watchList: true}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.url = srv.URL
	t.Cleanup(func() {
		close(s.stop) // ends the watches still open
		srv.Close()
	})
	return s
}

// kubeconfig writes a kubeconfig for the server and returns its path.
func (s *apiServer) kubeconfig(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: stand-in
    cluster:
      server: %s
users:
  - name: agent
    user:
      token: stand-in-token
contexts:
  - name: stand-in
    context:
      cluster: stand-in
      user: agent
current-context: stand-in
`, s.url)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// Requests returns the requests so far.
func (s *apiServer) Requests() []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apiRequest(nil), s.requests...)
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := parseRequest(r)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if !ok || req.APIGroup != "" || req.Resource != "pods" || (req.Verb != "list" && req.Verb != "watch") {
		s.t.Logf("stand-in API server: unexpected request %s %s", r.Method, r.URL)
		writeStatus(w, http.StatusNotFound, "NotFound", "the stand-in API server serves only LIST and WATCH of pods")
		return
	}
	pods, err := s.selectPods(req)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if req.Verb == "list" {
		writeJSON(w, corev1.PodList{
			TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: resourceVersion},
			Items:    pods,
		})
		return
	}
	if req.Query.Get("sendInitialEvents") == "true" && !s.watchList {
		writeStatus(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
			"sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
		return
	}
	s.watch(w, r, req, pods)
}

// watch streams the initial events when asked (watch-list), then holds the
// stream open without events until the client or the test goes away.
func (s *apiServer) watch(w http.ResponseWriter, r *http.Request, req apiRequest, pods []corev1.Pod) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if req.Query.Get("sendInitialEvents") == "true" {
		for i := range pods {
			_ = enc.Encode(watchEvent{Type: "ADDED", Object: &pods[i]})
		}
		// The bookmark that tells client-go the initial state is complete.
		_ = enc.Encode(watchEvent{Type: "BOOKMARK", Object: &corev1.Pod{
			TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{
				ResourceVersion: resourceVersion,
				Annotations:     map[string]string{metav1.InitialEventsAnnotationKey: "true"},
			},
		}})
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case <-r.Context().Done():
	case <-s.stop:
	}
}

type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// selectPods returns the pods a request's namespace and selectors match.
func (s *apiServer) selectPods(req apiRequest) ([]corev1.Pod, error) {
	fs, err := fields.ParseSelector(req.Query.Get("fieldSelector"))
	if err != nil {
		return nil, fmt.Errorf("fieldSelector: %w", err)
	}
	ls, err := labels.Parse(req.Query.Get("labelSelector"))
	if err != nil {
		return nil, fmt.Errorf("labelSelector: %w", err)
	}
	var out []corev1.Pod
	for _, p := range s.pods {
		f := fields.Set{
			"metadata.name":      p.Name,
			"metadata.namespace": p.Namespace,
			"spec.nodeName":      p.Spec.NodeName,
			"status.phase":       string(p.Status.Phase),
		}
		if (req.Namespace == "" || req.Namespace == p.Namespace) && fs.Matches(f) && ls.Matches(labels.Set(p.Labels)) {
			p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
			p.ResourceVersion = resourceVersion
			out = append(out, p)
		}
	}
	return out, nil
}

// parseRequest reads the verb, group, resource and namespace from an API
// path: /api/v1/[namespaces/NS/]RESOURCE[/NAME] or
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME].
func parseRequest(r *http.Request) (apiRequest, bool) {
	req := apiRequest{Path: r.URL.Path, Query: r.URL.Query()}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		req.APIGroup, rest = parts[1], parts[3:]
	default:
		req.Verb = strings.ToLower(r.Method)
		return req, false
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		req.Namespace, rest = rest[1], rest[2:]
	}
	req.Resource = rest[0]
	named := len(rest) > 1
	switch r.Method {
	case http.MethodGet:
		switch {
		case req.Query.Get("watch") == "true" || req.Query.Get("watch") == "1":
			req.Verb = "watch"
		case named:
			req.Verb = "get"
		default:
			req.Verb = "list"
		}
	case http.MethodPost:
		req.Verb = "create"
	case http.MethodPut:
		req.Verb = "update"
	case http.MethodPatch:
		req.Verb = "patch"
	case http.MethodDelete:
		req.Verb = "delete"
	default:
		req.Verb = strings.ToLower(r.Method)
	}
	return req, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}
