// Package loadaware is BeamHubLoad: a kube-scheduler plugin that places pods by the BeamHub
// extender's answers without an HTTP round trip per pod.
//
// The extender (beamhub scheduler) judges a pod by its resource shape only (requests, limits,
// overhead, QoS class: scheduler/models.py PodDemand) against a load snapshot it refreshes
// every few seconds.  So its answer for one shape and one set of candidate nodes is the same
// for every pod until the snapshot moves.  This plugin asks the extender exactly what
// kube-scheduler's extender client would (POST /filter and /prioritize with the pod and the
// node names), keeps each answer for cacheSeconds (default 1 s, below the extender's refresh
// interval), and answers the next pods of that shape from memory.  The policy stays in one
// place, the extender; the plugin holds no policy of its own.
//
// As with the chart's extender (ignorable: true), an unreachable extender never blocks a pod:
// the plugin skips itself, says so in the log, and leaves the extender alone for cacheSeconds
// (at least 1 s) before asking again, so pods do not each pay a failed connection.  Arguments
// mirror the chart's extender entry: extenderURL, timeout, ignorable, managedResources, and
// cacheSeconds.
package loadaware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "BeamHubLoad"

const (
	filterKey fwk.StateKey = Name + "/filter"
	scoreKey  fwk.StateKey = Name + "/score"
	maxCached              = 512
)

// Args are the plugin's pluginConfig arguments.
type Args struct {
	// ExtenderURL is the extender's base URL, e.g. http://127.0.0.1:8888.
	ExtenderURL string `json:"extenderURL"`
	// CacheSeconds is how long one answer serves pods of the same shape (default 1).
	CacheSeconds float64 `json:"cacheSeconds"`
	// Timeout bounds one request to the extender, as a Go duration (default "5s").
	Timeout string `json:"timeout"`
	// Filter asks the extender's /filter too (default true).
	Filter *bool `json:"filter"`
	// Ignorable: an unreachable extender never blocks a pod (default true); false fails the
	// scheduling cycle instead, as kube-scheduler does with a non-ignorable extender.
	Ignorable *bool `json:"ignorable"`
	// ManagedResources: when set, only pods requesting one of these resources ask the extender.
	ManagedResources []string `json:"managedResources"`
}

// Plugin implements PreFilter, Filter, PreScore and Score.
type Plugin struct {
	url       string
	ttl       time.Duration
	filter    bool
	ignorable bool
	managed   []v1.ResourceName
	client    *http.Client

	filters answers[filterAnswer]
	scores  answers[scoreAnswer]

	// downUntil: after a failed call, pods skip the extender until then (unix nanoseconds)
	// instead of each paying a failed connection.
	downUntil atomic.Int64
}

type filterAnswer struct {
	failed       map[string]string
	unresolvable map[string]string
}

type scoreAnswer struct {
	scores map[string]int64
}

// answers keeps the extender's answers of one kind by cache key, each for a while.
type answers[T any] struct {
	mu      sync.Mutex
	entries map[string]stamped[T]
}

type stamped[T any] struct {
	at    time.Time
	value T
}

// get returns the answer kept for key if younger than ttl, else fetches, keeps and returns one.
func (a *answers[T]) get(key string, ttl time.Duration, fetch func() (T, error)) (T, error) {
	now := time.Now()
	a.mu.Lock()
	kept, ok := a.entries[key]
	a.mu.Unlock()
	if ok && now.Sub(kept.at) <= ttl {
		return kept.value, nil
	}
	value, err := fetch()
	if err != nil {
		return value, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.entries == nil {
		a.entries = map[string]stamped[T]{}
	}
	if len(a.entries) >= maxCached {
		for k, old := range a.entries {
			if now.Sub(old.at) > ttl {
				delete(a.entries, k)
			}
		}
		if len(a.entries) >= maxCached { // all fresh: start again rather than grow without bound
			clear(a.entries)
		}
	}
	a.entries[key] = stamped[T]{at: now, value: value}
	return value, nil
}

func (f filterAnswer) Clone() fwk.StateData { return f }
func (s scoreAnswer) Clone() fwk.StateData  { return s }

var (
	_ framework.PreFilterPlugin = &Plugin{}
	_ framework.FilterPlugin    = &Plugin{}
	_ framework.PreScorePlugin  = &Plugin{}
	_ framework.ScorePlugin     = &Plugin{}
)

// New builds the plugin from its arguments.
func New(_ context.Context, obj runtime.Object, _ framework.Handle) (framework.Plugin, error) {
	args := Args{CacheSeconds: 1, Timeout: "5s"}
	if obj != nil {
		if err := frameworkruntime.DecodeInto(obj, &args); err != nil {
			return nil, fmt.Errorf("%s: bad pluginConfig args: %w", Name, err)
		}
	}
	if args.ExtenderURL == "" {
		return nil, fmt.Errorf("%s: pluginConfig args need extenderURL (the BeamHub extender's base URL)", Name)
	}
	timeout, err := time.ParseDuration(args.Timeout)
	if err != nil || timeout <= 0 || args.CacheSeconds < 0 {
		return nil, fmt.Errorf("%s: timeout must be a positive duration (got %q) and cacheSeconds >= 0", Name, args.Timeout)
	}
	p := &Plugin{
		url:       strings.TrimRight(args.ExtenderURL, "/"),
		ttl:       time.Duration(args.CacheSeconds * float64(time.Second)),
		filter:    args.Filter == nil || *args.Filter,
		ignorable: args.Ignorable == nil || *args.Ignorable,
		client:    &http.Client{Timeout: timeout},
	}
	for _, r := range args.ManagedResources {
		p.managed = append(p.managed, v1.ResourceName(r))
	}
	return p, nil
}

// interested: whether this pod goes to the extender (managedResources, as kube-scheduler's
// extender client decides).
func (p *Plugin) interested(pod *v1.Pod) bool {
	if len(p.managed) == 0 {
		return true
	}
	for _, containers := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range containers {
			for _, r := range p.managed {
				if _, ok := c.Resources.Requests[r]; ok {
					return true
				}
				if _, ok := c.Resources.Limits[r]; ok {
					return true
				}
			}
		}
	}
	return false
}

// down: whether a recent call failed (the extender is then left alone for cacheSeconds).
func (p *Plugin) down() bool { return time.Now().UnixNano() < p.downUntil.Load() }

// unreachable: skip this plugin for the cycle (ignorable) or fail the cycle.  err is the failed
// call's error, or nil while an earlier failure keeps the extender alone (logged once, then).
func (p *Plugin) unreachable(ctx context.Context, pod *v1.Pod, verb string, err error) *fwk.Status {
	wait := max(p.ttl, time.Second)
	if err != nil {
		p.downUntil.Store(time.Now().Add(wait).UnixNano())
		klog.FromContext(ctx).Info("BeamHub extender unreachable: scheduling without it", "pod", klog.KObj(pod), "verb", verb, "err", err, "retryAfter", wait)
	} else {
		err = fmt.Errorf("a call failed less than %v ago", wait)
	}
	if p.ignorable {
		return fwk.NewStatus(fwk.Skip)
	}
	return fwk.AsStatus(fmt.Errorf("%s: the BeamHub extender's /%s failed: %w", Name, verb, err))
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// shape is what the extender reads of a pod: its answer depends on nothing else of it.
func shape(pod *v1.Pod) string {
	type container struct {
		R v1.ResourceRequirements `json:"r"`
	}
	key := struct {
		C []container     `json:"c"`
		I []container     `json:"i"`
		O v1.ResourceList `json:"o"`
		Q v1.PodQOSClass  `json:"q"`
	}{O: pod.Spec.Overhead, Q: pod.Status.QOSClass}
	for _, c := range pod.Spec.Containers {
		key.C = append(key.C, container{c.Resources})
	}
	for _, c := range pod.Spec.InitContainers {
		key.I = append(key.I, container{c.Resources})
	}
	raw, _ := json.Marshal(key)
	return string(raw)
}

func nodeNames(nodes []fwk.NodeInfo) []string {
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if node := n.Node(); node != nil {
			names = append(names, node.Name)
		}
	}
	return names
}

// cacheKey is the pod's shape and the set of candidate nodes (in any order).
func cacheKey(pod *v1.Pod, names []string) string {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	h := fnv.New64a()
	for _, n := range sorted {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%s|%d|%x", shape(pod), len(sorted), h.Sum64())
}

func (p *Plugin) ask(ctx context.Context, verb string, pod *v1.Pod, names []string, out any) error {
	body, err := json.Marshal(extenderv1.ExtenderArgs{Pod: pod, NodeNames: &names})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/"+verb, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /%s: HTTP %d: %.300s", verb, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

// PreFilter fetches (or recalls) the extender's filter verdict on every node for this shape.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	if !p.filter || !p.interested(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if p.down() {
		return nil, p.unreachable(ctx, pod, "filter", nil)
	}
	names := nodeNames(nodes)
	answer, err := p.filters.get(cacheKey(pod, names), p.ttl, func() (filterAnswer, error) {
		var result extenderv1.ExtenderFilterResult
		if err := p.ask(ctx, "filter", pod, names, &result); err != nil {
			return filterAnswer{}, err
		}
		if result.Error != "" {
			return filterAnswer{}, fmt.Errorf("%s", result.Error)
		}
		return filterAnswer{failed: result.FailedNodes, unresolvable: result.FailedAndUnresolvableNodes}, nil
	})
	if err != nil {
		return nil, p.unreachable(ctx, pod, "filter", err)
	}
	state.Write(filterKey, answer)
	return nil, nil
}

// PreFilterExtensions: none (the verdict does not depend on the other pods).
func (p *Plugin) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter applies the extender's verdict on one node.
func (p *Plugin) Filter(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	data, err := state.Read(filterKey)
	if err != nil {
		return nil
	}
	answer := data.(filterAnswer)
	name := nodeInfo.Node().Name
	if reason, ok := answer.unresolvable[name]; ok {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	if reason, ok := answer.failed[name]; ok {
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	return nil
}

// PreScore fetches (or recalls) the extender's scores of the nodes that passed the filters.
func (p *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if !p.interested(pod) {
		return fwk.NewStatus(fwk.Skip)
	}
	if p.down() {
		return p.unreachable(ctx, pod, "prioritize", nil)
	}
	names := nodeNames(nodes)
	answer, err := p.scores.get(cacheKey(pod, names), p.ttl, func() (scoreAnswer, error) {
		var result extenderv1.HostPriorityList
		if err := p.ask(ctx, "prioritize", pod, names, &result); err != nil {
			return scoreAnswer{}, err
		}
		answer := scoreAnswer{scores: make(map[string]int64, len(result))}
		for _, hp := range result {
			answer.scores[hp.Host] = hp.Score
		}
		return answer, nil
	})
	if err != nil {
		return p.unreachable(ctx, pod, "prioritize", err)
	}
	state.Write(scoreKey, answer)
	return nil
}

// Score is the extender's score (0..10) on the framework's 0..100 scale, as kube-scheduler
// scales an extender's priorities; a node the extender did not score gets the middle.
func (p *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	scale := framework.MaxNodeScore / extenderv1.MaxExtenderPriority
	data, err := state.Read(scoreKey)
	if err != nil {
		return framework.MaxNodeScore / 2, nil
	}
	if s, ok := data.(scoreAnswer).scores[nodeInfo.Node().Name]; ok {
		return s * scale, nil
	}
	return framework.MaxNodeScore / 2, nil
}

// ScoreExtensions: none (scores are already on the framework's scale).
func (p *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }
