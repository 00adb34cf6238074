package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	chartDir      = "../helm/herald"
	fullValues    = "../helm/herald/ci/full-values.yaml"
	manifestsFile = "../kubernetes/herald.yaml"
	releaseName   = "herald"
	namespace     = "herald"
)

// kubeVersion is the cluster version the chart is linted and rendered for
// (its kubeVersion needs 1.30+ for the preStop sleep action).
var kubeVersion = func() *common.KubeVersion {
	v, err := common.ParseKubeVersion("v1.32.0")
	if err != nil {
		panic(err)
	}
	return v
}()

// serviceMonitor is the part of the Prometheus Operator's CRD the chart
// uses, decoded strictly like the Kubernetes types.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is a chart render decoded into typed objects.
type rendered struct {
	files       map[string]string // template path -> text
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	accounts    map[string]*corev1.ServiceAccount
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	ingresses   []*networkingv1.Ingress
	monitors    []*serviceMonitor
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return ch
}

func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := loader.LoadValues(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// renderChart renders the chart as `helm template herald --namespace
// herald` would, with vals over the chart's values.
func renderChart(t *testing.T, ch *chart.Chart, vals map[string]any) map[string]string {
	t.Helper()
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		t.Fatalf("render values: %v", err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits every rendered manifest into objects and decodes each
// strictly (an unknown or misspelt field fails) into its API type.
func decode(t *testing.T, files map[string]string) *rendered {
	t.Helper()
	r := &rendered{files: files, deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range docSeparator.Split(files[name], -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if tm.Kind == "" {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Fatalf("%s: a document without kind:\n%s", name, doc)
				}
				continue
			}
			strict := func(into any) {
				if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
					t.Fatalf("%s: %s does not decode strictly: %v\n%s", name, tm.Kind, err, doc)
				}
			}
			want := map[string]string{
				"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1", "ServiceAccount": "v1",
				"HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
				"Ingress": "networking.k8s.io/v1", "ServiceMonitor": "monitoring.coreos.com/v1",
			}[tm.Kind]
			if want == "" || tm.APIVersion != want {
				t.Fatalf("%s: unexpected %s %s", name, tm.APIVersion, tm.Kind)
			}
			switch tm.Kind {
			case "Deployment":
				var o appsv1.Deployment
				strict(&o)
				r.deployments[o.Name] = &o
			case "Service":
				var o corev1.Service
				strict(&o)
				r.services[o.Name] = &o
			case "ConfigMap":
				var o corev1.ConfigMap
				strict(&o)
				r.configMaps[o.Name] = &o
			case "Secret":
				var o corev1.Secret
				strict(&o)
				r.secrets[o.Name] = &o
			case "ServiceAccount":
				var o corev1.ServiceAccount
				strict(&o)
				r.accounts[o.Name] = &o
			case "HorizontalPodAutoscaler":
				var o autoscalingv2.HorizontalPodAutoscaler
				strict(&o)
				r.hpas = append(r.hpas, &o)
			case "PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strict(&o)
				r.pdbs = append(r.pdbs, &o)
			case "Ingress":
				var o networkingv1.Ingress
				strict(&o)
				r.ingresses = append(r.ingresses, &o)
			case "ServiceMonitor":
				var o serviceMonitor
				strict(&o)
				r.monitors = append(r.monitors, &o)
			}
		}
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{"default": {}, "full": readValues(t, fullValues)} {
		res := lint.RunAll(chartDir, vals, namespace, lint.WithKubeVersion(kubeVersion))
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (%s values): %s", name, m.Error())
			} else {
				t.Logf("helm lint (%s values): %s", name, m.Error())
			}
		}
	}
}

// heraldEnvNames is every HERALD_* variable `herald serve --help` names.
func heraldEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(heraldBin, "serve", "--help").CombinedOutput()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (HERALD_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if !names["HERALD_PORT"] || !names["HERALD_CONFIG"] {
		t.Fatalf("herald serve --help names no HERALD_PORT/HERALD_CONFIG:\n%s", out)
	}
	return names
}

func TestChartRendersValidObjects(t *testing.T) {
	ch := loadChart(t)
	envNames := heraldEnvNames(t)
	for _, tc := range []struct {
		name string
		vals map[string]any
	}{
		{"default", map[string]any{}},
		{"full", readValues(t, fullValues)},
		{"existing secret, no autoscaling", map[string]any{
			"existingSecret": "my-herald", "redis": map[string]any{"deploy": false},
			"autoscaling": map[string]any{"enabled": false}, "podDisruptionBudget": map[string]any{"enabled": false},
			"resources": map[string]any{"limits": nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := util.CoalesceValues(ch, tc.vals)
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, renderChart(t, ch, tc.vals))
			checkRender(t, r, vals, envNames)
		})
	}
}

// checkRender checks the objects against each other, the values and the
// binary: ports, probes, drain timing, env names, autoscaling.
func checkRender(t *testing.T, r *rendered, vals common.Values, envNames map[string]bool) {
	t.Helper()
	num := func(path string) int {
		v, err := vals.PathValue(path)
		if err != nil {
			t.Fatalf("values %s: %v", path, err)
		}
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("values %s = %v: %v", path, v, err)
		}
		return n
	}
	dep := r.deployments[releaseName]
	if dep == nil {
		t.Fatalf("no Deployment %q; got %v", releaseName, slices.Collect(maps.Keys(r.deployments)))
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != int32(num("port")) || ports["metrics"] != int32(num("metrics.port")) {
		t.Errorf("container ports %v, want http %d and metrics %d", ports, num("port"), num("metrics.port"))
	}
	resolve := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.Int {
			return p.IntVal
		}
		n, ok := ports[p.StrVal]
		if !ok {
			t.Errorf("port %q is not a container port", p.StrVal)
		}
		return n
	}
	for name, probe := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		want := map[string]string{"startup": "/up", "liveness": "/up", "readiness": "/ready"}[name]
		if probe.HTTPGet.Path != want || resolve(probe.HTTPGet.Port) != int32(num("port")) {
			t.Errorf("%s probe GET %s on %v, want %s on %d", name, probe.HTTPGet.Path, probe.HTTPGet.Port.String(), want, num("port"))
		}
	}

	// Env: literal values, the ConfigMap and the Secret.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, ef := range c.EnvFrom {
		cm := r.configMaps[ef.ConfigMapRef.Name]
		if cm == nil {
			t.Fatalf("envFrom names ConfigMap %q, not rendered", ef.ConfigMapRef.Name)
		}
		for k := range cm.Data {
			if _, dup := env[k]; dup {
				t.Errorf("%s is in the ConfigMap and the container env", k)
			}
			env[k] = corev1.EnvVar{Name: k, Value: cm.Data[k]}
		}
	}
	for name := range env {
		if strings.HasPrefix(name, "HERALD_") && !envNames[name] {
			t.Errorf("env %s is not a Herald setting (herald serve --help does not name it)", name)
		}
	}
	if got, want := env["HERALD_PORT"].Value, strconv.Itoa(num("port")); got != want {
		t.Errorf("HERALD_PORT %q, want %s", got, want)
	}
	if got, want := env["HERALD_METRICS_ADDR"].Value, ":"+strconv.Itoa(num("metrics.port")); got != want {
		t.Errorf("HERALD_METRICS_ADDR %q, want %s", got, want)
	}
	// The drain: SIGTERM comes after the preStop sleep; Herald drains for
	// shutdown_timeout and gives close handshakes 5 s more.
	drain, stopSleep := num("drain.shutdownTimeoutSeconds"), num("drain.preStopSleepSeconds")
	if got, want := env["HERALD_SHUTDOWN_TIMEOUT"].Value, strconv.Itoa(drain)+"s"; got != want {
		t.Errorf("HERALD_SHUTDOWN_TIMEOUT %q, want %s", got, want)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < int64(stopSleep+drain+5) {
		t.Errorf("terminationGracePeriodSeconds %v, want at least %d", g, stopSleep+drain+5)
	}
	if stopSleep > 0 && (c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != int64(stopSleep)) {
		t.Errorf("preStop %+v, want a %d s sleep", c.Lifecycle, stopSleep)
	}
	for _, name := range []string{"HERALD_REDIS_URL", "HERALD_ADMIN_TOKEN"} {
		if e, ok := env[name]; ok {
			ref := e.ValueFrom
			if ref == nil || ref.SecretKeyRef == nil {
				t.Errorf("%s is not from a Secret", name)
				continue
			}
			if vals["existingSecret"] == "" {
				s := r.secrets[ref.SecretKeyRef.Name]
				if s == nil || s.StringData[ref.SecretKeyRef.Key] == "" {
					t.Errorf("%s names %s/%s, which is not rendered", name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
				}
			}
		}
	}
	// Memory: the guard's and the runtime's limit follow limits.memory.
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !lim.IsZero() {
		mb, gml := env["HERALD_MEMORY_LIMIT_MB"].ValueFrom, env["GOMEMLIMIT"].ValueFrom
		if mb == nil || mb.ResourceFieldRef == nil || mb.ResourceFieldRef.Resource != "limits.memory" || !mb.ResourceFieldRef.Divisor.Equal(resource.MustParse("1Mi")) {
			t.Errorf("HERALD_MEMORY_LIMIT_MB is not limits.memory in Mi: %+v", mb)
		}
		if gml == nil || gml.ResourceFieldRef == nil || gml.ResourceFieldRef.Resource != "limits.memory" || !gml.ResourceFieldRef.Divisor.IsZero() {
			t.Errorf("GOMEMLIMIT is not limits.memory in bytes: %+v", gml)
		}
	} else if _, ok := env["GOMEMLIMIT"]; ok {
		t.Errorf("GOMEMLIMIT set without a memory limit")
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser != 65532 {
		t.Errorf("not run as 65532 with a read-only root")
	}
	// The config file comes from the Secret.
	if env["HERALD_CONFIG"].Value != "/etc/herald/herald.yaml" || len(pod.Volumes) == 0 || pod.Volumes[0].Secret == nil {
		t.Errorf("herald.yaml is not mounted from a Secret")
	} else if s := r.secrets[pod.Volumes[0].Secret.SecretName]; vals["existingSecret"] == "" && (s == nil || s.StringData["herald.yaml"] == "") {
		t.Errorf("Secret %s with herald.yaml not rendered", pod.Volumes[0].Secret.SecretName)
	}
	if sa := pod.ServiceAccountName; r.accounts[sa] == nil {
		t.Errorf("service account %q not rendered", sa)
	}

	// The Service reaches the container's ports and selects the pods.
	svc := r.services[releaseName]
	if svc == nil {
		t.Fatalf("no Service %q", releaseName)
	}
	podLabels := dep.Spec.Template.Labels
	selects := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !selects(svc.Spec.Selector) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, podLabels)
	}
	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p
		resolve(p.TargetPort)
	}
	if svcPorts["http"].Port != int32(num("service.port")) {
		t.Errorf("Service port %d, want %d", svcPorts["http"].Port, num("service.port"))
	}
	// Every pod selector (the chart's Redis has its own) is unambiguous.
	for name, d := range r.deployments {
		if name != releaseName && selects(d.Spec.Selector.MatchLabels) {
			t.Errorf("Deployment %s's selector also selects Herald's pods", name)
		}
	}
	if !selects(dep.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment selector does not select its pods")
	}

	// Autoscaling on CPU and herald_connections per pod.
	if on, _ := vals.PathValue("autoscaling.enabled"); on == true {
		if len(r.hpas) != 1 {
			t.Fatalf("%d HPAs", len(r.hpas))
		}
		h := r.hpas[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != dep.Name || dep.Spec.Replicas != nil {
			t.Errorf("HPA targets %+v; the Deployment sets replicas %v", h.Spec.ScaleTargetRef, dep.Spec.Replicas)
		}
		var cpu, conns bool
		for _, m := range h.Spec.Metrics {
			switch {
			case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
				cpu = m.Resource.Target.AverageUtilization != nil
			case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods.Metric.Name == "herald_connections":
				conns = m.Pods.Target.AverageValue != nil && m.Pods.Target.AverageValue.Value() == int64(num("autoscaling.connectionsPerPod"))
			}
		}
		if !cpu || !conns {
			t.Errorf("HPA metrics: cpu %v, herald_connections per pod %v", cpu, conns)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("CPU autoscaling without a CPU request")
		}
	} else if len(r.hpas) != 0 {
		t.Errorf("HPA rendered while autoscaling is off")
	}
	if on, _ := vals.PathValue("podDisruptionBudget.enabled"); on == true {
		if len(r.pdbs) != 1 || !selects(r.pdbs[0].Spec.Selector.MatchLabels) {
			t.Errorf("PodDisruptionBudget missing or not selecting the pods")
		}
	}
	for _, ing := range r.ingresses {
		if ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "" {
			t.Errorf("Ingress without a WebSocket read timeout")
		}
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if b := p.Backend.Service; b == nil || b.Name != svc.Name || b.Port.Name != "http" {
					t.Errorf("Ingress backend %+v is not the Service's http port", p.Backend)
				}
			}
		}
	}
	for _, m := range r.monitors {
		if !selects(m.Spec.Selector.MatchLabels) {
			t.Errorf("ServiceMonitor selector does not match the Service's labels")
		}
		if len(m.Spec.Endpoints) != 1 || m.Spec.Endpoints[0].Port != "metrics" || m.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v", m.Spec.Endpoints)
		}
	}
}

// TestChartRunsTheBinary renders the full values with free ports and the
// local Redis, starts the real binary with exactly the env and config file
// the pod would get, and GETs every probe and /metrics where the manifests
// say they are.
func TestChartRunsTheBinary(t *testing.T) {
	ch := loadChart(t)
	var (
		r    *rendered
		dep  *appsv1.Deployment
		c    corev1.Container
		port int
	)
	host := "127.0.0.1"
	p := startServing(t, func() ([]string, string, []string, string) {
		port = freePort(t)
		metricsPort := freePort(t)
		vals := readValues(t, fullValues)
		vals["port"] = port
		vals["metrics"].(map[string]any)["port"] = metricsPort
		vals["redis"] = map[string]any{"url": "redis://127.0.0.1:6379/0"}
		vals["config"].(map[string]any)["redis_prefix"] = "herald-deploytest-" + randHex(4) + ":"
		r = decode(t, renderChart(t, ch, vals))
		dep = r.deployments[releaseName]
		c = dep.Spec.Template.Spec.Containers[0]

		dir := t.TempDir()
		var env []string
		for _, ef := range c.EnvFrom {
			for _, k := range slices.Sorted(maps.Keys(r.configMaps[ef.ConfigMapRef.Name].Data)) {
				env = append(env, k+"="+r.configMaps[ef.ConfigMapRef.Name].Data[k])
			}
		}
		for _, e := range c.Env {
			v := e.Value
			switch {
			case e.ValueFrom == nil:
			case e.ValueFrom.SecretKeyRef != nil:
				v = r.secrets[e.ValueFrom.SecretKeyRef.Name].StringData[e.ValueFrom.SecretKeyRef.Key]
			case e.ValueFrom.ResourceFieldRef != nil:
				ref := e.ValueFrom.ResourceFieldRef
				q := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))]
				div := ref.Divisor
				if div.IsZero() {
					div = resource.MustParse("1")
				}
				v = strconv.FormatInt(q.Value()/div.Value(), 10)
			default:
				t.Fatalf("env %s: unsupported source", e.Name)
			}
			if e.Name == "HERALD_CONFIG" {
				// The Secret's herald.yaml, where the volume would mount it.
				vol := dep.Spec.Template.Spec.Volumes[0]
				mustWrite(t, filepath.Join(dir, "herald.yaml"), r.secrets[vol.Secret.SecretName].StringData["herald.yaml"])
				v = filepath.Join(dir, "herald.yaml")
			}
			env = append(env, e.Name+"="+v)
		}
		t.Logf("env: %q", env)
		return env, heraldBin, c.Args, fmt.Sprintf("http://%s:%d/up", host, port)
	})
	portOf := func(ps intstr.IntOrString) int32 {
		for _, cp := range c.Ports {
			if cp.Name == ps.StrVal {
				return cp.ContainerPort
			}
		}
		return ps.IntVal
	}
	for _, probe := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		url := fmt.Sprintf("http://%s:%d%s", host, portOf(probe.HTTPGet.Port), probe.HTTPGet.Path)
		waitHTTP(t, p, url) // /ready turns 200 once Redis is joined
	}
	// A client of the first app, so that herald_connections has a series.
	apps := r.secrets[releaseName].StringData["herald.yaml"]
	key := regexp.MustCompile(`(?m)^\s*key: (\S+)`).FindStringSubmatch(apps)
	if key == nil {
		t.Fatalf("no app key in herald.yaml:\n%s", apps)
	}
	conn := pusherConnect(t, fmt.Sprintf("%s:%d", host, port), key[1])
	defer conn.Close()
	mon := r.monitors[0].Spec.Endpoints[0]
	var metricsPortNum int32
	for _, sp := range r.services[releaseName].Spec.Ports {
		if sp.Name == mon.Port {
			metricsPortNum = portOf(sp.TargetPort)
		}
	}
	status, body, err := get(context.Background(), fmt.Sprintf("http://%s:%d%s", host, metricsPortNum, mon.Path))
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s on the metrics port: %d %v", mon.Path, status, err)
	}
	metric := r.hpas[0].Spec.Metrics[1].Pods.Metric.Name
	if !regexp.MustCompile(`(?m)^` + metric + `\{app="[^"]+"\} 1$`).MatchString(body) {
		t.Errorf("/metrics has no %s series with the open connection:\n%s", metric, grepLines(body, metric))
	}
	// /metrics is not on the port the Ingress exposes.
	if status, _, _ := get(context.Background(), fmt.Sprintf("http://%s:%d/metrics", host, port)); status == http.StatusOK {
		t.Errorf("/metrics is served on the client port too")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestManifestsMatchChart checks deploy/kubernetes/herald.yaml against a
// fresh render of the default values; UPDATE_MANIFESTS=1 rewrites it.
func TestManifestsMatchChart(t *testing.T) {
	files := renderChart(t, loadChart(t), map[string]any{})
	order := map[string]int{"ServiceAccount": 0, "Secret": 1, "ConfigMap": 2, "Service": 3, "Deployment": 4,
		"HorizontalPodAutoscaler": 5, "PodDisruptionBudget": 6, "Ingress": 7, "ServiceMonitor": 8}
	type part struct {
		kind, source, text string
	}
	var parts []part
	for name, text := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range docSeparator.Split(text, -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil || tm.Kind == "" {
				continue
			}
			parts = append(parts, part{tm.Kind, name, strings.TrimSpace(doc)})
		}
	}
	sort.SliceStable(parts, func(i, j int) bool {
		if order[parts[i].kind] != order[parts[j].kind] {
			return order[parts[i].kind] < order[parts[j].kind]
		}
		return parts[i].source+parts[i].text < parts[j].source+parts[j].text
	})
	var b strings.Builder
	b.WriteString("# Herald on Kubernetes without Helm: deploy/helm/herald rendered with its\n" +
		"# default values (release \"herald\"). Do not edit: change the chart and run\n" +
		"#   make manifests\n" +
		"# (deploy/test checks that this file equals a fresh render).\n" +
		"# Before applying, replace the app secret in the Secret below; docs/deploy.md.\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", p.source, p.text)
	}
	want := b.String()
	if os.Getenv("UPDATE_MANIFESTS") == "1" {
		if err := os.MkdirAll(filepath.Dir(manifestsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, manifestsFile, want)
		return
	}
	got, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v (make manifests writes it)", err)
	}
	if string(got) != want {
		t.Errorf("%s is not the chart's render: run `make manifests`", manifestsFile)
	}
	decode(t, map[string]string{"manifests.yaml": string(got)})
}

// TestChartSchemaRejectsTypos checks that values.schema.json turns a
// misspelt value into an error instead of a silently ignored key.
func TestChartSchemaRejectsTypos(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"misspelt key":  {"autoscalling": map[string]any{"enabled": true}},
		"nested typo":   {"drain": map[string]any{"shutdownTimeout": 30}},
		"wrong type":    {"port": "6001"},
		"app no secret": {"apps": []any{map[string]any{"id": "a", "key": "k"}}},
		"redis scheme":  {"redis": map[string]any{"url": "http://redis:6379"}},
	} {
		res := lint.RunAll(chartDir, vals, namespace, lint.WithKubeVersion(kubeVersion))
		failed := false
		for _, m := range res.Messages {
			failed = failed || m.Severity >= support.ErrorSev
		}
		if !failed {
			t.Errorf("%s: %v linted without an error", name, vals)
		}
	}
}
