package privileged

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// Runner runs a system command (systemctl, vmware-rpctool, dmsetup) and
// returns its standard output. The console's ExecRunner is one.
type Runner interface {
	Output(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Config is the helper daemon's outside world and limits.
type Config struct {
	// Root prefixes /config ("/" on the appliance, a temp dir in tests).
	Root string
	// Run runs the system commands. Required.
	Run Runner
	// SetHostname sets the kernel's hostname (sethostname(2) by default:
	// tests run the helper in a UTS namespace of its own).
	SetHostname func(name string) error
	Now         func() time.Time
	// Sleep waits d or until ctx ends (spacing restarts apart).
	Sleep func(ctx context.Context, d time.Duration) error
	// Log gets one line per request: what, from whom, the outcome.
	Log io.Writer
	// PowerHold: after a reboot or power-off went ahead, further power
	// requests are refused for this long (two consoles, a key held down).
	PowerHold time.Duration
	// RestartSpacing is the least time between two restarts of the same
	// services (systemd gives up on a unit restarted 5 times in 10 s): a
	// request that comes sooner waits for the rest.
	RestartSpacing time.Duration
	// CommandTimeout bounds each system command.
	CommandTimeout time.Duration
	// TrialTimeout is how long a network change stays on trial before
	// the previous settings come back by themselves.
	TrialTimeout time.Duration
}

// DefaultConfig returns the appliance's configuration, without Run.
func DefaultConfig() Config {
	return Config{
		Root:           "/",
		SetHostname:    func(name string) error { return unix.Sethostname([]byte(name)) },
		Now:            time.Now,
		Sleep:          sleep,
		Log:            os.Stderr,
		PowerHold:      2 * time.Minute,
		RestartSpacing: 3 * time.Second,
		CommandTimeout: 2 * time.Minute,
		TrialTimeout:   DefaultTrial,
	}
}

// Validate returns every problem with c.
func (c Config) Validate() error {
	var errs []error
	if !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("root %q is not an absolute path", c.Root))
	}
	if c.Run == nil {
		errs = append(errs, errors.New("no command runner"))
	}
	if c.SetHostname == nil || c.Now == nil || c.Sleep == nil || c.Log == nil {
		errs = append(errs, errors.New("SetHostname, Now, Sleep and Log are required (start from DefaultConfig)"))
	}
	if c.PowerHold <= 0 || c.RestartSpacing < 0 || c.CommandTimeout <= 0 || c.TrialTimeout <= 0 {
		errs = append(errs, errors.New("PowerHold, CommandTimeout and TrialTimeout must be positive, RestartSpacing not negative"))
	}
	return errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Server answers the console's requests. It is an http.Handler; Serve runs
// it on a listener. Actions (every POST) run one at a time; reads run
// alongside them.
type Server struct {
	cfg     Config
	actions sync.Mutex // held while an action runs
	// Guarded by actions.
	lastRestart map[Request]time.Time
	lastPower   time.Time
	powerWhat   Request
	atBoot      bool // the revert command at boot: files only, no restarts

	trialMu    sync.Mutex // guards trialTimer
	trialTimer *time.Timer
	reverting  atomic.Bool // a revert is under way (the status says the trial still runs)
}

// NewServer checks cfg and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console helper configuration: %w", err)
	}
	return &Server{cfg: cfg, lastRestart: map[Request]time.Time{}}, nil
}

// Serve answers requests on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s, ConnContext: withPeer, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(c)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP dispatches one request from the closed list, and logs it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	what := strings.TrimPrefix(r.URL.Path, "/v1/")
	if len(what) > 80 {
		what = what[:80] + "..."
	}
	var ep Endpoint
	found := false
	for _, e := range Endpoints() {
		if e.Path() == r.URL.Path {
			ep, found = e, true
		}
	}
	var (
		done *Done
		raw  []byte
		err  error
	)
	switch {
	case !found:
		err = &Error{Status: http.StatusNotFound, Code: CodeUnknownRequest,
			Message: fmt.Sprintf("%q is not one of the console helper's requests", what),
			Hint:    "the console and its helper come from the same image; restart the console"}
	case r.Method != ep.Method:
		err = &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethod,
			Message: fmt.Sprintf("%s is made with %s, not %s", ep.Request, ep.Method, r.Method)}
	default:
		done, raw, err = s.handle(r, ep.Request)
	}
	s.log(r, what, done, raw, err)
	switch {
	case err != nil:
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: err.Error()}
		}
		writeJSON(w, e.Status, ErrorBody{Code: e.Code, Message: e.Message, Hint: e.Hint})
	case raw != nil:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(raw)
	default:
		writeJSON(w, http.StatusOK, done)
	}
}

func (s *Server) handle(r *http.Request, req Request) (*Done, []byte, error) {
	if req == TrialStatus {
		b, err := json.Marshal(s.trialState())
		return nil, b, err
	}
	if req == GuestInfo || req == VerityStatus {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CommandTimeout)
		defer cancel()
		if req == GuestInfo {
			b, err := s.guestInfo(ctx)
			return nil, b, err
		}
		b, err := s.verityStatus(ctx)
		return nil, b, err
	}
	var body []byte
	if req == WriteSettings || req == TrialNetwork || req == TrustCA {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		switch {
		case err != nil:
			return nil, nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "reading the request body: " + err.Error()}
		case len(body) > MaxBody:
			return nil, nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBadRequest,
				Message: fmt.Sprintf("request body is larger than %d bytes", MaxBody)}
		}
	}
	// An action goes through once started, even if the console goes away.
	ctx := context.WithoutCancel(r.Context())
	s.actions.Lock()
	defer s.actions.Unlock()
	switch req {
	case WriteSettings:
		return s.writeSettings(body)
	case TrialNetwork:
		return s.trialNetwork(ctx, body)
	case KeepNetwork:
		return s.keepNetwork(ctx)
	case RevertNetwork:
		return s.revertNow(ctx)
	case TrustCA:
		return s.trustCA(body)
	case ApplyNetwork:
		return s.applyNetwork(ctx)
	case RestartConnector:
		if err := s.restart(ctx, req, "vaultpam-connector"); err != nil {
			return nil, nil, err
		}
		return &Done{Detail: "vaultpam-connector restarted"}, nil, nil
	case Reboot, PowerOff:
		return s.power(ctx, req)
	}
	return nil, nil, fmt.Errorf("request %s has no handler", req)
}

// settingsFields are the JSON names a WriteSettings body may carry.
func settingsFields() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[SettingsBody]()
	for i := range t.NumField() {
		m[strings.Split(t.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	return m
}

// looksSecret reports whether a field name is one a secret would have.
func looksSecret(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"token", "secret", "password", "passwd", "key", "private", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func (s *Server) writeSettings(body []byte) (*Done, []byte, error) {
	st, err := s.decodeSettings(body)
	if err != nil {
		return nil, nil, err
	}
	files, err := st.Write(s.cfg.Root)
	if err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: "writing settings: " + err.Error(),
			Hint: "check that the CONFIG partition is mounted on /config"}
	}
	return &Done{Detail: fmt.Sprintf("%d files in /config", len(files)), Files: files}, nil, nil
}

// decodeSettings reads a SettingsBody and validates it: known fields
// only, no secret, valid values.
func (s *Server) decodeSettings(body []byte) (settings.Settings, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "settings body is not a JSON object: " + err.Error()}
	}
	allowed := settingsFields()
	for name := range fields {
		switch {
		case looksSecret(name):
			return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeSecret,
				Message: fmt.Sprintf("settings never carry secrets: field %q refused", name),
				Hint:    "the enrolment token goes to the connector's socket, never to /config"}
		case !allowed[name]:
			return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
				Message: fmt.Sprintf("settings have no field %q", name)}
		}
	}
	var b SettingsBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "settings body does not decode: " + err.Error()}
	}
	st := settings.Settings(b)
	if f := tokenField(st); f != "" {
		return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeSecret,
			Message: fmt.Sprintf("settings never carry secrets: the %s looks like an enrolment token", f),
			Hint:    "type the token in the token step, not in a settings field"}
	}
	if err := st.Validate(); err != nil {
		return settings.Settings{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: strings.ReplaceAll(err.Error(), "\n", "; ")}
	}
	return st, nil
}

// tokenField names the first field whose value passes an enrolment
// token's check character ("" when none does), as the connector's
// configuration check does.
func tokenField(st settings.Settings) string {
	for _, f := range []struct{ name, v string }{
		{"interface", st.Interface}, {"hostname", st.Hostname}, {"NTP servers", st.NTP}, {"HTTP proxy", st.Proxy},
		{"control plane URL", st.ControlPlaneURL}, {"connector name", st.ConnectorName},
	} {
		for _, part := range append(settings.SplitList(f.v), f.v) {
			if looksLikeToken(part) {
				return f.name
			}
		}
	}
	return ""
}

// looksLikeToken: v, written as a token is shown (20 characters, or 4
// groups of 5), passes the token check character.
func looksLikeToken(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) != protocol.TokenChars && len(v) != protocol.TokenChars+3 {
		return false
	}
	_, err := protocol.ParseToken(v)
	return err == nil
}

func (s *Server) applyNetwork(ctx context.Context) (*Done, []byte, error) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Root, settings.HostnameFile))
	if err != nil {
		return nil, nil, &Error{Status: http.StatusConflict, Code: CodeFailed, Message: "reading the hostname: " + err.Error(),
			Hint: "write the settings first"}
	}
	name, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if msg := settings.CheckHostname(name); msg != "" {
		return nil, nil, &Error{Status: http.StatusConflict, Code: CodeInvalid, Message: "/config/hostname: " + msg}
	}
	if err := s.cfg.SetHostname(name); err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: fmt.Sprintf("setting the hostname to %s: %v", name, err)}
	}
	if err := s.restart(ctx, ApplyNetwork, "systemd-networkd", "systemd-timesyncd"); err != nil {
		return nil, nil, err
	}
	return &Done{Detail: "hostname " + name + ", networkd, timesyncd"}, nil, nil
}

// restart restarts units one after the other, waiting first if the same
// request restarted them less than RestartSpacing ago.
func (s *Server) restart(ctx context.Context, req Request, units ...string) error {
	if last, ok := s.lastRestart[req]; ok {
		if wait := last.Add(s.cfg.RestartSpacing).Sub(s.cfg.Now()); wait > 0 {
			if err := s.cfg.Sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
	defer func() { s.lastRestart[req] = s.cfg.Now() }()
	for _, u := range units {
		if _, err := s.run(ctx, "systemctl", "restart", u); err != nil {
			return &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: err.Error()}
		}
	}
	return nil
}

func (s *Server) power(ctx context.Context, req Request) (*Done, []byte, error) {
	what := map[Request]string{Reboot: "reboot", PowerOff: "poweroff"}[req]
	if !s.lastPower.IsZero() {
		if ago := s.cfg.Now().Sub(s.lastPower); ago < s.cfg.PowerHold {
			return nil, nil, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
				Message: fmt.Sprintf("a %s was requested %s ago; the appliance is going down", map[Request]string{Reboot: "reboot", PowerOff: "power-off"}[s.powerWhat], ago.Round(time.Second)),
				Hint:    fmt.Sprintf("wait; if it is still up %s after the first request, ask again", s.cfg.PowerHold)}
		}
	}
	if _, err := s.run(ctx, "systemctl", what); err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: err.Error()}
	}
	s.lastPower, s.powerWhat = s.cfg.Now(), req
	return &Done{Detail: what + " requested"}, nil, nil
}

func (s *Server) guestInfo(ctx context.Context) ([]byte, error) {
	out, err := s.cfg.Run.Output(ctx, "vmware-rpctool", "info-get guestinfo.ovfEnv")
	switch {
	case err != nil:
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no OVF environment from VMware Tools: " + err.Error()}
	case len(bytes.TrimSpace(out)) == 0:
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no OVF environment from VMware Tools (guestinfo.ovfEnv is empty)"}
	case len(out) > MaxGuestInfo:
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
			Message: fmt.Sprintf("guestinfo.ovfEnv is %d bytes, more than the %d an OVF environment may have", len(out), MaxGuestInfo)}
	}
	return out, nil
}

func (s *Server) verityStatus(ctx context.Context) ([]byte, error) {
	out, err := s.run(ctx, "dmsetup", "status", "--target", "verity")
	switch {
	case err != nil:
		return nil, &Error{Status: http.StatusInternalServerError, Code: CodeFailed, Message: err.Error()}
	case len(out) > MaxVerityStatus:
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("dmsetup status is %d bytes, more than %d", len(out), MaxVerityStatus)}
	case out == nil:
		out = []byte{}
	}
	return out, nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	return s.cfg.Run.Output(ctx, name, args...)
}

// log writes one line: the request, the caller, the outcome. Nothing a
// request carries is logged but field names and validation messages.
func (s *Server) log(r *http.Request, what string, done *Done, raw []byte, err error) {
	who := "an unknown peer"
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		who = fmt.Sprintf("pid %d uid %d", p.pid, p.uid)
	}
	var outcome string
	var e *Error
	switch {
	case errors.As(err, &e):
		outcome = fmt.Sprintf("refused (%s): %s", e.Code, e.Message)
		if e.Code == CodeFailed {
			outcome = "failed: " + e.Message
		}
	case err != nil:
		outcome = "failed: " + err.Error()
	case raw != nil:
		outcome = fmt.Sprintf("ok, %d bytes", len(raw))
	default:
		outcome = "ok: " + done.Detail
	}
	fmt.Fprintf(s.cfg.Log, "vaultpam-console helper: %s %q from %s: %s\n", r.Method, what, who, outcome)
}

type peerKey struct{}

type peer struct {
	pid int32
	uid uint32
}

// withPeer records the connecting process's credentials (SO_PEERCRED) for
// the log.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{pid: cred.Pid, uid: cred.Uid})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Listen creates the Unix socket at path with mode 0660, replacing a
// stale socket. On the appliance systemd makes the socket
// (vaultpam-console-helper.socket); tests and hand runs use this.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting socket permissions: %w", err)
	}
	return l, nil
}
