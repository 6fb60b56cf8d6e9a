package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/qrtext"
	"github.com/vaultpam/appliance/lab"
)

// runPair runs `vaultpam-connector pair` in-process; its output grows in
// out while it runs, its exit code arrives on the channel.
func runPair(sock string, out *syncBuf, args ...string) chan int {
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), Env{Stdout: out, Stderr: out, Args: append([]string{"pair", "--socket", sock, "--poll", "20ms"}, args...)})
	}()
	return done
}

var codeRE = regexp.MustCompile(`Code  ([0-9A-Z]{4}-[0-9A-Z]{4})`)

// waitOutput waits until re matches out and returns the match.
func waitOutput(t *testing.T, out *syncBuf, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in the output:\n%s", re, out.String())
	return nil
}

// `pair` prints the code, the URL and a QR code of the URL that decodes
// back to it; approved in the lab, the connector goes Online and pair
// exits 0.
func TestPairCommandApproved(t *testing.T) {
	cp := lab.NewTest(t, lab.WithHeartbeat(time.Second), lab.WithPairing(0, time.Second))
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(st localapi.Status) bool { return st.State == "awaiting_token" })
	out := &syncBuf{}
	done := runPair(d.sock, out)
	code := waitOutput(t, out, codeRE)[1]
	st := waitStatus(t, d.sock, "pairing", func(st localapi.Status) bool { return st.Pairing != nil })
	if st.State != "pairing" || st.Pairing.UserCode != code || !strings.Contains(out.String(), st.Pairing.VerificationURLComplete) {
		t.Fatalf("status %s %+v; output:\n%s", st.State, st.Pairing, out.String())
	}
	// The QR code in the output is the URL with the code.
	qr, err := qrtext.Parse(strings.Split(out.String(), "\n"), qrtext.Options{})
	if err != nil {
		t.Fatalf("no QR code in the output: %v\n%s", err, out.String())
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(qr.Image(4))
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil || res.GetText() != st.Pairing.VerificationURLComplete {
		t.Fatalf("the printed QR code decodes to %v, %v; want %q", res, err, st.Pairing.VerificationURLComplete)
	}
	if _, err := cp.Authority.ApprovePairing(code, "dc1-cli", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-done:
		if c != 0 || !strings.Contains(out.String(), "Online: connector conn-") {
			t.Fatalf("pair exit %d:\n%s", c, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("pair did not end:\n%s", out.String())
	}
	t.Logf("vaultpam-connector pair printed:\n%s", out.String())
}

// Denied: pair says so and exits 1; --stop ends a pairing.
func TestPairCommandDeniedAndStopped(t *testing.T) {
	cp := lab.NewTest(t, lab.WithPairing(0, time.Second))
	d := startDaemon(t, cp, nil)
	waitStatus(t, d.sock, "waiting for a token", func(st localapi.Status) bool { return st.State == "awaiting_token" })
	out := &syncBuf{}
	done := runPair(d.sock, out, "--qr", "none")
	code := waitOutput(t, out, codeRE)[1]
	if strings.Contains(out.String(), "█") {
		t.Errorf("--qr none printed a QR code:\n%s", out.String())
	}
	cp.Authority.DenyPairing(code)
	if c := <-done; c != 1 || !strings.Contains(out.String(), "denied the pairing of code "+code) || !strings.Contains(out.String(), "hint: ") {
		t.Fatalf("pair after denial: exit %d:\n%s", c, out.String())
	}

	out = &syncBuf{}
	done = runPair(d.sock, out, "--timeout", "1h")
	waitOutput(t, out, codeRE)
	stopOut := &syncBuf{}
	if c := <-runPair(d.sock, stopOut, "--stop"); c != 0 || !strings.Contains(stopOut.String(), "Pairing stopped: Waiting for token") {
		t.Fatalf("pair --stop: exit %d:\n%s", c, stopOut.String())
	}
	if c := <-done; c != 1 || !strings.Contains(out.String(), "pairing stopped on request") {
		t.Errorf("the following pair after --stop: exit %d:\n%s", c, out.String())
	}
	if c := <-runPair(d.sock, &syncBuf{}, "--qr", "blue"); c != exitUsage {
		t.Errorf("--qr blue: exit %d, want %d", c, exitUsage)
	}
}
