// Package agent is the connector daemon: it owns the runtime state machine
// (ARCHITECTURE.md, "Runtime") and drives enrolment, the identity store and the tunnel.
//
//	awaiting_token ─token→ enrolling ─ok→ connecting ─tunnel up→ online
//	needs_recovery ─token→ enrolling ─bad token→ back where it came from
//	online ⇄ reconnecting; any → needs_recovery when the identity is refused;
//	any → draining on shutdown.
//
// A token is tried once: a token the control plane reports as used,
// unknown or expired leaves the connector waiting with the reason in its
// status, and the same token is refused locally if handed over again. The
// Agent implements localapi.Backend.
package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vaultpam/appliance/connector/allowlist"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/identity"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
)

// Enroller is what the agent needs from the enrolment client
// (*enrol.Client implements it). Start presents a token and returns the
// answer to the challenge, which the agent stores before Finish sends it:
// Finish can be repeated, after a crash too, with the same result.
type Enroller interface {
	Start(ctx context.Context, token string) (*identity.Pending, error)
	Finish(ctx context.Context, p *identity.Pending) (*identity.Identity, error)
	WhoAmI(ctx context.Context, id *identity.Identity) (protocol.WhoAmI, error)
}

// Options configures an Agent. Config, Store, Mode and Enroller are
// required; the rest have defaults.
type Options struct {
	Config   config.Config
	Store    identity.Store
	Mode     identity.Mode
	DataDir  string
	Enroller Enroller
	// Link starts the tunnel for an identity; nil means no tunnel (the
	// agent stops at connecting once the identity is accepted).
	Link LinkFactory
	// Token is an enrolment or recovery token handed over at start
	// (PAM_ENROLMENT_TOKEN or --token-file); it is ignored when a usable
	// identity exists.
	Token   string
	Version string
	// Updates are the appliance's image updates; nil where there are none
	// (containers, native packages).
	Updates Updates
	// Notify receives sd_notify lines ("READY=1", "STATUS=…"); nil drops them.
	Notify func(string)
	// OnTransition is called after every state change; nil means none.
	OnTransition func(Transition)
	Logger       *slog.Logger
	Now          func() time.Time
	// RetryDelay returns the wait before retry attempt n (from 0) after a
	// network failure; nil means jittered exponential backoff, 1 s to 30 s.
	RetryDelay func(n int) time.Duration
	// LocalAddrs reads the appliance's own addresses for the target policy
	// in the status; nil means allowlist.InterfaceAddrs. (The tunnel reads
	// them itself for every session.)
	LocalAddrs allowlist.LocalAddrs
	// Counters are the tunnel's cumulative counters the status shows
	// (sessions, bytes); the Link factory's tunnels must add to the same
	// ones. Nil shows zeros.
	Counters *tunnel.Counters
	// Step, when set, is called at the named points of an enrolment
	// (Step* constants); crash tests stop the process there.
	Step func(name string)
}

// Agent is the connector daemon. Create it with New, run it with Run.
type Agent struct {
	opt    Options
	log    *slog.Logger
	tokens chan string

	mu         sync.Mutex
	state      state.State
	reason     string
	hint       string
	since      time.Time
	id         *identity.Identity
	link       LinkStatus          // last reported by the tunnel
	cur        Link                // the running tunnel, nil when none
	burnt      map[[32]byte]string // tokens that must not be tried again → code
	history    []Transition
	waiting    state.State       // where to go back to after a failed enrolment
	waitingWhy string            // and why it was there (kept in front of a refusal)
	pending    *identity.Pending // an enrolment interrupted at the last stop, resumed by Run

	rebooting bool // drained for an update's reboot: stay Draining until stopped

	// recipient is the control plane's support-bundle key, as last
	// announced (kept in DataDir/support-recipient across restarts, so a
	// bundle can be encrypted while the tunnel is down).
	recipient string
	// clock is the last clock-offset estimate (zero clockAt: none).
	clock   time.Duration
	clockAt time.Time

	submitMu sync.Mutex    // serialises SubmitToken
	relink   chan struct{} // a re-enrolment replaced the identity: restart the tunnel
}

// New loads the identity and decides the initial state; it does not touch
// the network.
func New(opt Options) (*Agent, error) {
	var errs []error
	if opt.Store == nil {
		errs = append(errs, errors.New("agent: no identity store"))
	}
	if opt.Enroller == nil {
		errs = append(errs, errors.New("agent: no enroller"))
	}
	if opt.Mode.Name == "" {
		errs = append(errs, errors.New("agent: runtime mode not set"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.RetryDelay == nil {
		opt.RetryDelay = defaultRetryDelay
	}
	a := &Agent{opt: opt, log: opt.Logger, tokens: make(chan string, 1), relink: make(chan struct{}, 1), burnt: map[[32]byte]string{}, since: opt.Now()}
	id, err := opt.Store.Load()
	switch {
	case err == nil:
		a.id, a.state = id, state.Connecting
		a.reason = "identity loaded"
	case errors.Is(err, identity.ErrExpired) || errors.Is(err, identity.ErrNotYetValid):
		// This machine's clock is not the judge: it may be wrong. The
		// control plane decides (WhoAmI, then the tunnel's hello); only its
		// refusal leads to needs_recovery.
		a.id, a.state = id, state.Connecting
		a.reason = "by this machine's clock (" + opt.Now().UTC().Format(time.RFC3339) + ") the client " + err.Error() +
			"; asking the control plane, which decides (if this clock is wrong, set it right: NTP)"
	case errors.Is(err, identity.ErrNotFound) && opt.Mode.Durable:
		a.state = state.AwaitingToken // no reason: nothing went wrong
		a.hint = "enter the enrolment token from the dashboard (Connectors → Add)"
	case errors.Is(err, identity.ErrNotFound):
		a.state = state.NeedsRecovery
		a.reason = fmt.Sprintf("no identity in %s, which is %s and does not survive a restart", opt.DataDir, opt.Mode.FSType)
		a.hint = "enter a recovery token (dashboard: Connectors → the connector → Recover), or an enrolment token for a new connector; give the connector a durable data volume to avoid this"
	default:
		a.id = id // may be nil (corrupt); kept for the connector ID
		a.state = state.NeedsRecovery
		a.reason, a.hint = identityProblem(err)
	}
	a.waiting, a.waitingWhy = a.state, a.reason
	switch p, err := opt.Store.LoadPending(); {
	case err == nil && a.id != nil && a.id.Key != nil && a.id.Key.Equal(p.Key):
		// Stopped after the identity was saved, before the pending
		// enrolment was removed: it is done.
		if err := opt.Store.RemovePending(); err != nil {
			a.log.Warn("removing a finished pending enrolment", "err", err)
		}
	case err == nil:
		a.pending = p
		a.state = state.Enrolling
		a.reason = "resuming the enrolment interrupted at the last stop (started " + p.CreatedAt.UTC().Format(time.RFC3339) + ")"
		a.hint = ""
	case !errors.Is(err, identity.ErrNotFound):
		a.log.Warn("a pending enrolment cannot be read and is dropped (its token may still be unused)", "err", err)
		opt.Store.RemovePending()
	}
	a.recipient = a.loadRecipient()
	if a.state == state.Connecting && opt.Token != "" {
		a.log.Info("identity present; the enrolment token given at start is not used", "connector", a.id.ConnectorID)
		opt.Token = ""
	}
	a.opt.Token = opt.Token
	return a, nil
}

func identityProblem(err error) (reason, hint string) {
	switch {
	case errors.Is(err, identity.ErrKeyMismatch):
		return "stored private key does not match the stored certificate", "create a recovery token for this connector in the dashboard and enter it on the console"
	case errors.Is(err, identity.ErrCorrupt):
		return "stored identity is unreadable: " + err.Error(), "create a recovery token for this connector in the dashboard and enter it on the console; the damaged file is kept as identity.json.corrupt"
	}
	return "identity cannot be loaded: " + err.Error(), "check PAM_AGENT_DATA_DIR permissions, then restart the connector"
}

// transition is the one place the state changes. A change the table does
// not allow (a late report racing a shutdown) is logged and ignored; it
// reports whether the change happened.
func (a *Agent) transition(to state.State, reason, hint string) bool {
	a.mu.Lock()
	from := a.state
	if !CanTransition(from, to) {
		a.mu.Unlock()
		a.log.Error("state change refused by the transition table", "from", from.String(), "to", to.String(), "reason", reason)
		return false
	}
	if from == to && a.reason == reason && a.hint == hint {
		a.mu.Unlock()
		return true
	}
	if from != to {
		a.since = a.opt.Now()
	}
	a.state, a.reason, a.hint = to, reason, hint
	tr := Transition{From: from, To: to, Reason: reason}
	a.history = append(a.history, tr)
	a.mu.Unlock()
	if from == to {
		a.log.Info("state unchanged, new reason", "state", to.String(), "reason", reason)
	} else {
		a.log.Info("state", "from", from.String(), "to", to.String(), "reason", reason)
	}
	a.notify("STATUS=" + statusLine(to, reason))
	if a.opt.OnTransition != nil {
		a.opt.OnTransition(tr)
	}
	return true
}

func statusLine(s state.State, reason string) string {
	if reason == "" {
		return s.Label()
	}
	return s.Label() + ": " + reason
}

func (a *Agent) notify(s string) {
	if a.opt.Notify != nil {
		a.opt.Notify(s)
	}
}

// State returns the current state.
func (a *Agent) State() state.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// History returns the transitions so far, oldest first.
func (a *Agent) History() []Transition {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Transition(nil), a.history...)
}

// Status implements localapi.Backend.
func (a *Agent) Status() localapi.Status {
	a.mu.Lock()
	cur := a.cur
	a.mu.Unlock()
	var live *LinkStatus
	if cur != nil {
		ls := cur.Status() // outside our lock: the tunnel calls back into us
		live = &ls
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if live != nil {
		a.link = *live
	}
	if !a.link.ClockMeasured.IsZero() {
		a.clock, a.clockAt = a.link.ClockOffset, a.link.ClockMeasured
	}
	st := localapi.Status{
		State: a.state.String(), StateLabel: a.state.Label(), Reason: a.reason, Hint: a.hint,
		Mode: a.opt.Mode.Name, DataDir: a.opt.DataDir, DataDurable: a.opt.Mode.Durable,
		ConnectorName: a.opt.Config.ConnectorName, ControlPlane: a.opt.Config.ControlPlaneURL,
		Version: a.opt.Version, Since: a.since.UTC(),
		LastHeartbeat: a.link.LastHeartbeat, HeartbeatInterval: localapi.Duration(a.link.HeartbeatInterval),
		TunnelRTT: localapi.Duration(a.link.RTT), ActiveSessions: a.link.ActiveSessions,
	}
	if a.opt.Updates != nil {
		st.Image = a.opt.Updates.Image()
	}
	st.AllowedTargets = targetPolicy(a.opt.Config.AllowedTargets, a.opt.LocalAddrs)
	if !a.clockAt.IsZero() {
		d := localapi.Duration(a.clock)
		st.ClockOffset, st.ClockWarning = &d, localapi.ClockWarning(a.clock)
	}
	if a.opt.Counters != nil {
		c := a.opt.Counters.Snapshot()
		st.SessionsTotal, st.BytesUp, st.BytesDown = c.SessionsTotal, c.BytesUp, c.BytesDown
	}
	st.SupportRecipient = a.recipient
	if a.id != nil {
		st.ConnectorID = a.id.ConnectorID
		if len(a.id.Chain) > 0 {
			st.CertNotAfter = a.id.Leaf().NotAfter.UTC()
		}
	}
	return st
}

// Identity returns the identity in use, nil before enrolment.
func (a *Agent) Identity() *identity.Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// SubmitToken implements localapi.Backend: it checks the token's syntax
// and check character, refuses tokens already found used, and queues it.
func (a *Agent) SubmitToken(ctx context.Context, token string) error {
	canon, err := protocol.ParseToken(token)
	if err != nil {
		code := "token_invalid"
		if errors.Is(err, protocol.ErrTokenTypo) {
			code = protocol.CodeTokenTypo
		}
		return &localapi.Error{Code: code, Message: err.Error(), Hint: tokenHint(code)}
	}
	a.submitMu.Lock()
	defer a.submitMu.Unlock()
	a.mu.Lock()
	st := a.state
	code, burnt := a.burnt[sha256.Sum256([]byte(canon))]
	a.mu.Unlock()
	if burnt {
		return &localapi.Error{Status: 409, Code: code, Message: "this token was already tried and refused (" + code + ")", Hint: tokenHint(code)}
	}
	switch st {
	case state.AwaitingToken, state.NeedsRecovery:
	case state.Online, state.Connecting, state.Reconnecting:
		return a.reenrolWait(canon)
	default:
		return &localapi.Error{Status: 409, Code: "not_waiting_for_token", Message: "the connector is " + st.Label() + " and cannot take a token now",
			Hint: "wait until it shows state.Online, Waiting for token or Needs recovery"}
	}
	// state.Enrolling from here on, before the caller polls the status: the
	// token is queued for Run (the channel is empty while waiting).
	a.mu.Lock()
	a.waiting, a.waitingWhy = st, a.reason
	a.mu.Unlock()
	a.transition(state.Enrolling, "token received; presenting it to the control plane", "")
	a.tokens <- canon
	return nil
}

// targetPolicy describes allowed_targets and the default deny set for the
// status JSON.
func targetPolicy(entries []string, locals allowlist.LocalAddrs) *localapi.TargetPolicy {
	d := allowlist.Describe(entries, locals)
	tp := &localapi.TargetPolicy{All: len(d.Entries) == 0, Entries: d.Entries, Summary: d.Summary}
	for _, r := range d.Denied {
		tp.Denied = append(tp.Denied, localapi.DeniedRange{Range: r.Range.String(), What: r.What})
	}
	return tp
}
