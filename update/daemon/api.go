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
	"strconv"
	"syscall"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

// Handler serves the updater's local API:
//
//	GET  /v1/status    → localapi.Image
//	POST /v1/install   ← localapi.InstallRequest → 202, or an ErrorBody (409 refused, 400 bad request)
//	POST /v1/rollback  ← localapi.RollbackRequest → 202, or an ErrorBody
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
		if err := d.Rollback(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
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
	s := &server{d: d, srv: &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *server) open() error {
	ln, err := localapi.Listen(s.d.cfg.Socket)
	if err != nil {
		return err
	}
	if g := s.d.cfg.SocketGroup; g != "" {
		if err := chgrp(s.d.cfg.Socket, g); err != nil {
			s.d.cfg.Logf("updater: socket group %s: %v (only root can use the socket)", g, err)
		}
	}
	if fi, err := os.Stat(s.d.cfg.Socket); err == nil {
		s.ino = fi.Sys().(*syscall.Stat_t).Ino
	}
	s.ln = ln
	go s.srv.Serve(ln)
	return nil
}

// keepSocket puts the socket back when it disappears: the connector's
// unit removes /run/vaultpam (its RuntimeDirectory) when it stops.
func (s *server) keepSocket(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(s.d.cfg.Socket)
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

func chgrp(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, err := user.LookupGroup(group)
		if err != nil {
			return err
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return err
		}
	}
	return os.Chown(path, -1, gid)
}
