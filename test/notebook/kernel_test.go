package notebook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/homeroom/homeroom/internal/testenv"
)

// student is one student's browser, as far as Jupyter can tell: a cookie
// jar signed in through their link, every request through Traefik.
type student struct {
	t    *testing.T
	id   string
	base string // http://<student>.<class>.lab.localhost
	http *http.Client
	tr   *testenv.Traefik
}

func newStudent(t *testing.T, tr *testenv.Traefik, id string) *student {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &student{t: t, id: id, base: "http://" + host(id), tr: tr, http: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, tr.Addr)
		}},
	}}
}

// get requests path once and returns the status and body.
func (s *student) get(path string) (int, string) {
	s.t.Helper()
	resp, err := s.http.Get(s.base + path)
	if err != nil {
		s.t.Fatalf("%s: GET %s: %v", s.id, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// waitAnswers waits until the student's notebook answers its API through
// Traefik again, after its sandbox was started again.
func (s *student) waitAnswers() {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := s.http.Get(s.base + "/api")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s's notebook does not answer again: %v %v", s.id, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// xsrf is Jupyter's _xsrf cookie, which its API wants echoed in a header
// on every request that changes something.
func (s *student) xsrf() string {
	u, _ := url.Parse(s.base + "/")
	for _, c := range s.http.Jar.Cookies(u) {
		if c.Name == "_xsrf" {
			return c.Value
		}
	}
	s.t.Fatalf("%s has no _xsrf cookie from Jupyter", s.id)
	return ""
}

// post sends a JSON body with the _xsrf header and decodes the answer.
func (s *student) post(path, body string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-XSRFToken", s.xsrf())
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s: POST %s: %v", s.id, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// kernel is a Jupyter kernel of the student's, reached over its websocket
// through Traefik as the notebook page reaches it.
type kernel struct {
	s       *student
	id      string
	session string
	conn    *websocket.Conn
}

func (s *student) startKernel() *kernel {
	s.t.Helper()
	var k struct{ ID string }
	if code := s.post("/api/kernels", `{"name": "python3"}`, &k); code != http.StatusCreated || k.ID == "" {
		s.t.Fatalf("%s: start a kernel: %d", s.id, code)
	}
	kn := &kernel{s: s, id: k.ID, session: randomID()}
	kn.connect()
	return kn
}

func (k *kernel) connect() {
	k.s.t.Helper()
	if k.conn != nil {
		k.conn.CloseNow()
	}
	u, _ := url.Parse(k.s.base + "/")
	var cookies []string
	for _, c := range k.s.http.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+host(k.s.id)+"/api/kernels/"+k.id+"/channels?session_id="+k.session, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: k.s.http.Transport, Timeout: 30 * time.Second},
		HTTPHeader: http.Header{"Cookie": {strings.Join(cookies, "; ")}},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		k.s.t.Fatalf("%s: the kernel's websocket through Traefik: %v (status %d)", k.s.id, err, status)
	}
	conn.SetReadLimit(64 << 20)
	k.conn = conn
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type message struct {
	Header       map[string]any  `json:"header"`
	ParentHeader map[string]any  `json:"parent_header"`
	Metadata     map[string]any  `json:"metadata"`
	Content      json.RawMessage `json:"content"`
	Channel      string          `json:"channel"`
	MsgType      string          `json:"msg_type,omitempty"`
}

// result is what a cell printed and how it ended.
type result struct {
	Stdout string
	Status string // "ok", "error", "no reply", or the kernel's state when it died: "restarting", "dead"
	Error  string
}

// run executes code as a cell and waits, up to timeout, for its reply, or
// for the kernel to die under it.
func (k *kernel) run(code string, timeout time.Duration) result {
	k.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgID := randomID()
	content, _ := json.Marshal(map[string]any{"code": code, "silent": false, "store_history": true,
		"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true})
	req, _ := json.Marshal(message{
		Header: map[string]any{"msg_id": msgID, "username": k.s.id, "session": k.session,
			"msg_type": "execute_request", "version": "5.3", "date": time.Now().UTC().Format(time.RFC3339)},
		ParentHeader: map[string]any{}, Metadata: map[string]any{}, Content: content, Channel: "shell",
	})
	if err := k.conn.Write(ctx, websocket.MessageText, req); err != nil {
		k.s.t.Fatalf("%s: send a cell: %v", k.s.id, err)
	}
	var res result
	idle := false
	for {
		_, data, err := k.conn.Read(ctx)
		if err != nil {
			res.Status, res.Error = "no reply", err.Error()
			return res
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		typ, _ := m.Header["msg_type"].(string)
		var c struct {
			Name, Text, Status, Ename, Evalue string
			ExecutionState                    string `json:"execution_state"`
		}
		json.Unmarshal(m.Content, &c)
		if typ == "status" && (c.ExecutionState == "restarting" || c.ExecutionState == "dead") {
			// The server says so when the kernel's process died.
			res.Status = c.ExecutionState
			return res
		}
		if m.ParentHeader["msg_id"] != msgID {
			continue
		}
		// The reply comes on the shell channel and what the cell printed on
		// iopub, in no set order between them; the kernel reports idle on
		// iopub only after what the cell printed, so a cell is over when
		// both its reply and its idle have come.
		switch typ {
		case "stream":
			if c.Name == "stdout" {
				res.Stdout += c.Text
			}
		case "error":
			res.Error = c.Ename + ": " + c.Evalue
		case "status":
			idle = idle || c.ExecutionState == "idle"
		case "execute_reply":
			res.Status = c.Status
		}
		if idle && res.Status != "" {
			return res
		}
	}
}

// must runs a cell that has to succeed and returns what it printed.
func (k *kernel) must(code string) string {
	k.s.t.Helper()
	r := k.run(code, time.Minute)
	if r.Status != "ok" {
		k.s.t.Fatalf("%s: cell %q: %+v", k.s.id, code, r)
	}
	return r.Stdout
}

// restart asks Jupyter to restart the kernel, as the Kernel menu does, and
// waits until it runs cells again.
func (k *kernel) restart() int {
	k.s.t.Helper()
	if code := k.s.post("/api/kernels/"+k.id+"/restart", "", nil); code != http.StatusOK {
		return code
	}
	k.connect()
	k.waitAlive()
	return http.StatusOK
}

// waitAlive waits until the kernel (restarted by Jupyter on its own after
// it died, or by restart) runs a cell.
func (k *kernel) waitAlive() {
	k.s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := k.run("print('alive')", 10*time.Second)
		if r.Status == "ok" && strings.TrimSpace(r.Stdout) == "alive" {
			return
		}
		if time.Now().After(deadline) {
			k.s.t.Fatalf("%s: the kernel does not run cells again: %+v", k.s.id, r)
		}
		k.connect()
	}
}

func (k *kernel) String() string { return fmt.Sprintf("kernel %s of %s", k.id, k.s.id) }
