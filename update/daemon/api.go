package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

// Handler serves the updater's local API:
//
//	GET  /v1/status    → localapi.Image
//	POST /v1/install   ← localapi.InstallRequest → 202, or an ErrorBody (409 refused, 400 bad request)
//	POST /v1/rollback  ← localapi.RollbackRequest → 202, or an ErrorBody
//
// An install with confirm_downgrade and every rollback are the
// operator's: they are taken only from a caller whose SO_PEERCRED uid is
// root's or the console's (Config.ConsoleUser), else 403
// localapi.UpdateCodeNotPermitted. The connector (group vaultpam, which
// may use the socket) can install newer updates, never an older one.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST /v1/install", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.InstallRequest
		if err := decode(r, &req); err != nil {
			writeError(w, err)
			return
		}
		if req.ConfirmDowngrade {
			if err := d.operator(r.Context(), "confirm a downgrade"); err != nil {
				writeError(w, err)
				return
			}
		}
		if err := d.Install(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.RollbackRequest
		if err := decode(r, &req); err != nil {
			writeError(w, err)
			return
		}
		if err := d.operator(r.Context(), "roll back"); err != nil {
			writeError(w, err)
			return
		}
		if err := d.Rollback(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

// peerKey is the context key of a connection's peer credentials.
type peerKey struct{}

// withPeer puts the Unix socket peer's credentials (SO_PEERCRED: the
// process that connected) into the connection's context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, *cred)
}

// operator refuses (403) unless the caller is root or the console's
// user: only the operator may ask for what.
func (d *Daemon) operator(ctx context.Context, what string) error {
	cred, ok := ctx.Value(peerKey{}).(syscall.Ucred)
	if ok && (cred.Uid == 0 || (d.consoleUID >= 0 && int(cred.Uid) == d.consoleUID)) {
		return nil
	}
	who := "an unknown caller"
	if ok {
		who = fmt.Sprintf("uid %d", cred.Uid)
	}
	return &localapi.Error{Status: http.StatusForbidden, Code: localapi.UpdateCodeNotPermitted,
		Message: fmt.Sprintf("only the operator may %s; %s is not root or the console's user", what, who),
		Hint:    "ask on the appliance's console (Update screen), or as root: vaultpam-update"}
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &localapi.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf("the request body does not decode: %v", err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// apiError is implemented by refusals.
type apiError interface{ APIError() *localapi.Error }

func writeError(w http.ResponseWriter, err error) {
	var e *localapi.Error
	var ae apiError
	switch {
	case errors.As(err, &ae):
		e = ae.APIError()
	case errors.As(err, &e):
	default:
		e = &localapi.Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
	}
	code := e.Status
	if code == 0 {
		code = http.StatusBadRequest
	}
	writeJSON(w, code, localapi.ErrorBody{Code: e.Code, Message: e.Message, Hint: e.Hint})
}

// server is the API on its Unix socket.
type server struct {
	d   *Daemon
	srv *http.Server
	ln  net.Listener
	ino uint64
}

// listen creates the socket (0660, group SocketGroup) and serves on it.
func (d *Daemon) listen() (*server, error) {
	s := &server{d: d, srv: &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second, ConnContext: withPeer}}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *server) open() error {
	gid := -1
	if g := s.d.cfg.SocketGroup; g != "" {
		var err error
		if gid, err = lookupGroup(g); err != nil {
			s.d.cfg.Logf("updater: socket group %s: %v (only root can use the socket)", g, err)
			gid = -1
		}
	}
	ln, ino, err := listenUnix(s.d.cfg.Socket, gid)
	if err != nil {
		return err
	}
	s.ino = ino
	s.ln = ln
	go s.srv.Serve(ln)
	return nil
}

// listenUnix listens on path, a socket of mode 0660 with group gid (-1:
// the process's). Its directory must be this user's and writable by no
// one else (the updater's RuntimeDirectory): it is made 0750 with group
// gid, so that group can reach the socket. Nothing is changed by a path
// that could follow a symbolic link: the socket is created with its mode
// (umask), its group set with lchown; the directory is checked with
// lstat first.
func listenUnix(path string, gid int) (net.Listener, uint64, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, 0, fmt.Errorf("the socket's directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("the socket's directory: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || int(st.Uid) != os.Geteuid() {
		return nil, 0, fmt.Errorf("the socket's directory %s is not a directory of uid %d: refusing it (hint: the updater's socket belongs in its own RuntimeDirectory, /run/vaultpam-update)", dir, os.Geteuid())
	}
	if gid >= 0 {
		if err := os.Lchown(dir, -1, gid); err != nil {
			return nil, 0, fmt.Errorf("the socket's directory: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o750); err != nil { // lstat said: a directory of ours
		return nil, 0, fmt.Errorf("the socket's directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, 0, fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, 0, fmt.Errorf("another process is listening on %s", path)
		}
		os.Remove(path) // stale: left by a process that is gone
	}
	umaskMu.Lock()
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, 0, fmt.Errorf("listening on %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, 0, fmt.Errorf("the socket's group: %w", err)
		}
	}
	var ino uint64
	if fi, err := os.Lstat(path); err == nil {
		ino = fi.Sys().(*syscall.Stat_t).Ino
	}
	return ln, ino, nil
}

// umaskMu serialises the umask change around the socket's creation.
var umaskMu sync.Mutex

// keepSocket puts the socket back when it disappears (someone with root's
// rights removed it).
func (s *server) keepSocket(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Lstat(s.d.cfg.Socket)
		if err == nil && fi.Sys().(*syscall.Stat_t).Ino == s.ino {
			continue
		}
		s.ln.Close()
		if err := s.open(); err != nil {
			s.d.cfg.Logf("updater: re-creating the socket: %v", err)
		} else {
			s.d.cfg.Logf("updater: the socket %s was removed; listening again", s.d.cfg.Socket)
		}
	}
}

func (s *server) close() {
	s.srv.Close()
	os.Remove(s.d.cfg.Socket)
}

// lookupGroup returns the gid of group (a name or a number).
func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
