// Package kubernetes holds the connector's Kustomize manifests (base and the
// overlays autonomous and guided); its tests build both overlays with the
// kustomize API and decode every object strictly into the Kubernetes API
// types. See README.md.
package kubernetes

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/vaultpam/appliance/connector/config"
)

const dataDir = "/data" // PAM_AGENT_DATA_DIR in the manifests and the image

// built is one overlay, built and decoded.
type built struct {
	objects  []runtime.Object
	pod      corev1.PodSpec
	claims   []corev1.PersistentVolumeClaim // StatefulSet volumeClaimTemplates
	configMp *corev1.ConfigMap
}

// build runs `kustomize build overlays/NAME` through the kustomize API and
// decodes every object strictly: an unknown or duplicated field, or a kind
// the scheme does not know, fails the test.
func build(t *testing.T, overlay string) built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", overlay, err)
	}
	strict := strictDecoder(t)
	var b built
	workloads := 0
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := strict.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("overlays/%s: %s %s does not decode strictly: %v\n%s", overlay, r.GetKind(), r.GetName(), err, y)
		}
		if ns := r.GetNamespace(); gvk.Kind != "Namespace" && ns != "vaultpam" {
			t.Errorf("overlays/%s: %s %s is in namespace %q, want vaultpam", overlay, gvk.Kind, r.GetName(), ns)
		}
		b.objects = append(b.objects, obj)
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			b.pod, b.claims = o.Spec.Template.Spec, o.Spec.VolumeClaimTemplates
			workloads++
		case *appsv1.Deployment:
			b.pod = o.Spec.Template.Spec
			workloads++
		case *corev1.ConfigMap:
			b.configMp = o
		case *corev1.PersistentVolumeClaim:
			b.claims = append(b.claims, *o)
		}
	}
	if workloads != 1 {
		t.Fatalf("overlays/%s has %d workloads, want 1", overlay, workloads)
	}
	t.Logf("overlays/%s: %d objects, all strict", overlay, len(b.objects))
	return b
}

// strictDecoder decodes YAML into the API types of the kinds the manifests
// use, refusing unknown and duplicated fields.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}

// The decoder the tests rely on refuses what the API server would not
// know: an unknown field, a misplaced one, an unknown kind.
func TestStrictDecoderRefuses(t *testing.T) {
	d := strictDecoder(t)
	for name, y := range map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicaz: 1\n",
		"misplaced":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n",
		"unknown kind":  "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
	} {
		if _, _, err := d.Decode([]byte(y), nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func (b built) container(t *testing.T) corev1.Container {
	t.Helper()
	if len(b.pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(b.pod.Containers))
	}
	return b.pod.Containers[0]
}

// dataVolume returns the name of the volume mounted at the data dir.
func (b built) dataVolume(t *testing.T) string {
	t.Helper()
	for _, m := range b.container(t).VolumeMounts {
		if m.MountPath == dataDir {
			return m.Name
		}
	}
	t.Fatalf("nothing is mounted at %s", dataDir)
	return ""
}

func (b built) volume(name string) *corev1.Volume {
	for i := range b.pod.Volumes {
		if b.pod.Volumes[i].Name == name {
			return &b.pod.Volumes[i]
		}
	}
	return nil
}

// Autonomous restart mode: the data dir is a PersistentVolumeClaim.
func TestAutonomousMountsPVCAtDataDir(t *testing.T) {
	b := build(t, "autonomous")
	name := b.dataVolume(t)
	if v := b.volume(name); v != nil {
		t.Fatalf("%s is the pod volume %+v; want a volumeClaimTemplate", dataDir, v.VolumeSource)
	}
	found := false
	for _, c := range b.claims {
		if c.Name == name {
			found = true
			if len(c.Spec.AccessModes) != 1 || c.Spec.AccessModes[0] != corev1.ReadWriteOnce || c.Spec.Resources.Requests.Storage().IsZero() {
				t.Errorf("claim %s = %+v", name, c.Spec)
			}
		}
	}
	if !found {
		t.Errorf("%s is mounted from %q, which is no volumeClaimTemplate (claims: %d)", dataDir, name, len(b.claims))
	}
}

// Guided recovery mode: the data dir is an in-memory emptyDir, no PVC.
func TestGuidedHasNoPVC(t *testing.T) {
	b := build(t, "guided")
	if len(b.claims) != 0 {
		t.Errorf("guided overlay has %d persistent volume claims", len(b.claims))
	}
	v := b.volume(b.dataVolume(t))
	if v == nil || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || v.PersistentVolumeClaim != nil {
		t.Errorf("%s volume = %+v; want emptyDir with medium Memory (tmpfs: the connector reports guided_recovery)", dataDir, v)
	}
}

// What both overlays must keep: identical containers, non-root and
// read-only, probes through the connector's local API, resource requests,
// the token as a Secret file read once, configuration from a ConfigMap that
// the connector itself accepts, and a PDB selecting the pods.
func TestCommonPodContract(t *testing.T) {
	a, g := build(t, "autonomous"), build(t, "guided")
	if ca, cg := a.container(t), g.container(t); !reflect.DeepEqual(ca, cg) {
		t.Errorf("the overlays' containers differ:\nautonomous %+v\nguided     %+v", ca, cg)
	}
	c := a.container(t)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.Name == "PAM_ENROLMENT_TOKEN" {
			t.Error("the token is passed as an environment variable; it must come from the Secret file")
		}
	}
	if env["PAM_AGENT_DATA_DIR"] != dataDir {
		t.Errorf("PAM_AGENT_DATA_DIR = %q, want %s", env["PAM_AGENT_DATA_DIR"], dataDir)
	}
	tokenFile := env["PAM_ENROLMENT_TOKEN_FILE"]
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(tokenFile) {
			v := a.volume(m.Name)
			mounted = v != nil && v.Secret != nil && v.Secret.SecretName == "vaultpam-enrolment" && m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("PAM_ENROLMENT_TOKEN_FILE=%q is not in a read-only mount of Secret vaultpam-enrolment", tokenFile)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext = %+v", sc)
	}
	if p := a.pod.SecurityContext; p == nil || p.RunAsNonRoot == nil || !*p.RunAsNonRoot || p.RunAsUser == nil || *p.RunAsUser != 65532 {
		t.Errorf("pod securityContext = %+v; want non-root 65532", p)
	}
	probe := func(name string, p *corev1.Probe, check string) {
		want := []string{"/usr/bin/vaultpam-connector", "status", "--check", check}
		if p == nil || p.Exec == nil || !reflect.DeepEqual(p.Exec.Command, want) {
			t.Errorf("%s probe = %+v; want exec %q", name, p, want)
		}
	}
	probe("liveness", c.LivenessProbe, "live")
	probe("readiness", c.ReadinessProbe, "ready")
	probe("startup", c.StartupProbe, "live")
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resource requests = %v", c.Resources.Requests)
	}

	// The ConfigMap is mounted at the config's directory and holds a
	// configuration the connector accepts (no secrets, valid fields).
	if a.configMp == nil {
		t.Fatal("no ConfigMap")
	}
	cfgMount := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(env["PAM_AGENT_CONFIG"]) {
			v := a.volume(m.Name)
			cfgMount = v != nil && v.ConfigMap != nil && v.ConfigMap.Name == a.configMp.Name && m.ReadOnly
		}
	}
	if !cfgMount {
		t.Errorf("PAM_AGENT_CONFIG=%s is not in a read-only mount of ConfigMap %s", env["PAM_AGENT_CONFIG"], a.configMp.Name)
	}
	f := filepath.Join(t.TempDir(), "connector.yaml")
	os.WriteFile(f, []byte(a.configMp.Data[filepath.Base(env["PAM_AGENT_CONFIG"])]), 0o644)
	if _, err := config.Load(f, func(string) string { return "" }); err != nil {
		t.Errorf("the connector refuses the ConfigMap's connector.yaml: %v", err)
	}

	var pdb *policyv1.PodDisruptionBudget
	for _, o := range a.objects {
		if p, ok := o.(*policyv1.PodDisruptionBudget); ok {
			pdb = p
		}
	}
	if pdb == nil || pdb.Spec.Selector == nil {
		t.Fatal("no PodDisruptionBudget with a selector")
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if a.podLabels()[k] != v {
			t.Errorf("PDB selects %s=%s, which the pods do not carry (%v)", k, v, a.podLabels())
		}
	}
}

func (b built) podLabels() map[string]string {
	for _, o := range b.objects {
		switch w := o.(type) {
		case *appsv1.StatefulSet:
			return w.Spec.Template.Labels
		case *appsv1.Deployment:
			return w.Spec.Template.Labels
		}
	}
	return nil
}
