package lab

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
	"time"
)

// AdminSocket is the name of the admin socket inside the state directory.
// A running `vaultpam-lab serve` owns the state; the other vaultpam-lab
// commands talk to it through this socket (mode 0600: root or the owner).
const AdminSocket = "admin.sock"

// Admin is what the lab's operator commands need. *Authority implements
// it directly (no server running); *AdminClient through the socket.
type Admin interface {
	CreateToken(name string, ttl time.Duration) (string, error)
	CreateRecoveryToken(id string, ttl time.Duration) (string, error)
	ListConnectors() ([]Connector, error)
	Revoke(id string) error
	AddResource(r Resource) error
	// OfferUpdate offers the update bundle file (listed in the signed
	// repository repo; "" means update-repo next to it) to a connector.
	OfferUpdate(connectorID, file, repo string) (Offer, error)
}

// ListConnectors implements Admin.
func (a *Authority) ListConnectors() ([]Connector, error) { return a.Connectors(), nil }

type tokenReq struct {
	Name      string        `json:"name,omitempty"`
	Connector string        `json:"connector,omitempty"`
	TTL       time.Duration `json:"ttl,omitempty"`
}

type offerReq struct {
	Connector string `json:"connector"`
	File      string `json:"file"`
	Repo      string `json:"repo,omitempty"`
}

type tokenResp struct {
	Token string `json:"token"`
}

type errResp struct {
	Error string `json:"error"`
}

// AdminHandler serves Admin over HTTP (on the admin socket). extra, if
// not nil, is mounted for paths it handles (the broker's connect).
func AdminHandler(a Admin, extra func(*http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tokens", func(w http.ResponseWriter, r *http.Request) {
		var q tokenReq
		if json.NewDecoder(r.Body).Decode(&q) != nil {
			adminReply(w, nil, errors.New("bad request"))
			return
		}
		var tok string
		var err error
		if q.Connector != "" {
			tok, err = a.CreateRecoveryToken(q.Connector, q.TTL)
		} else {
			tok, err = a.CreateToken(q.Name, q.TTL)
		}
		adminReply(w, tokenResp{Token: tok}, err)
	})
	mux.HandleFunc("GET /connectors", func(w http.ResponseWriter, r *http.Request) {
		cs, err := a.ListConnectors()
		adminReply(w, cs, err)
	})
	mux.HandleFunc("POST /connectors/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		adminReply(w, struct{}{}, a.Revoke(r.PathValue("id")))
	})
	mux.HandleFunc("POST /resources", func(w http.ResponseWriter, r *http.Request) {
		var res Resource
		if json.NewDecoder(r.Body).Decode(&res) != nil {
			adminReply(w, nil, errors.New("bad request"))
			return
		}
		adminReply(w, res, a.AddResource(res))
	})
	if extra != nil {
		extra(mux)
	}
	return mux
}

func adminReply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(errResp{Error: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// ListenAdmin creates DIR/admin.sock with mode 0600.
func ListenAdmin(stateDir string) (net.Listener, error) {
	p := filepath.Join(stateDir, AdminSocket)
	os.Remove(p) // we hold the state lock: any socket here is stale
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// AdminClient talks to a running serve through DIR/admin.sock.
type AdminClient struct {
	Socket string
	hc     *http.Client
}

// DialAdmin returns a client for the serve process holding stateDir, or
// an error when none answers.
func DialAdmin(stateDir string) (*AdminClient, error) {
	p := filepath.Join(stateDir, AdminSocket)
	c, err := net.DialTimeout("unix", p, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c.Close()
	return &AdminClient{Socket: p, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p)
		}}}}, nil
}

// Dial opens a raw connection to the admin socket (for connect).
func (c *AdminClient) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", c.Socket)
}

func (c *AdminClient) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://lab"+path, body)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("lab server not answering on %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errResp
		json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// CreateToken implements Admin.
func (c *AdminClient) CreateToken(name string, ttl time.Duration) (string, error) {
	var r tokenResp
	err := c.call("POST", "/tokens", tokenReq{Name: name, TTL: ttl}, &r)
	return r.Token, err
}

// CreateRecoveryToken implements Admin.
func (c *AdminClient) CreateRecoveryToken(id string, ttl time.Duration) (string, error) {
	var r tokenResp
	err := c.call("POST", "/tokens", tokenReq{Connector: id, TTL: ttl}, &r)
	return r.Token, err
}

// ListConnectors implements Admin.
func (c *AdminClient) ListConnectors() ([]Connector, error) {
	var cs []Connector
	err := c.call("GET", "/connectors", nil, &cs)
	return cs, err
}

// Revoke implements Admin.
func (c *AdminClient) Revoke(id string) error {
	var v struct{}
	return c.call("POST", "/connectors/"+id+"/revoke", nil, &v)
}

// AddResource implements Admin.
func (c *AdminClient) AddResource(r Resource) error {
	var v Resource
	return c.call("POST", "/resources", r, &v)
}

// OfferUpdate implements Admin (the running server also sends the offer at
// once when the connector is online).
func (c *AdminClient) OfferUpdate(connectorID, file, repo string) (Offer, error) {
	var o Offer
	err := c.call("POST", "/updates", offerReq{Connector: connectorID, File: file, Repo: repo}, &o)
	return o, err
}
