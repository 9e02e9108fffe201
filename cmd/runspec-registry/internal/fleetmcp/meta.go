// meta.go reads what the listing needs of each tool that the grouped
// /tools answer does not carry (x-autonomy, title, annotations) from the
// instance records, which keep the tool objects as the agents posted
// them, and caches it per instance until the instance's entries change.

package fleetmcp

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// toolMeta is what one tool object of an instance says beyond the grouped
// answer.
type toolMeta struct {
	autonomy    Autonomy
	badAutonomy bool // x-autonomy was not one of the four names (read as confirm)
	title       string
	annotations *mcp.ToolAnnotations
	exec        [4]registry.ExecField // x-command, x-run-as, x-become-method, x-become-flags
}

// toolObject is the part of a posted tool object that is read here.
type toolObject struct {
	Name         string             `json:"name"`
	Autonomy     json.RawMessage    `json:"x-autonomy"`
	Title        json.RawMessage    `json:"title"`
	Annotations  json.RawMessage    `json:"annotations"`
	Command      registry.ExecField `json:"x-command"`
	RunAs        registry.ExecField `json:"x-run-as"`
	BecomeMethod registry.ExecField `json:"x-become-method"`
	BecomeFlags  registry.ExecField `json:"x-become-flags"`
}

// readToolMeta reads one tool object; ok is false when it is not an
// object with a name.
func readToolMeta(raw json.RawMessage) (name string, m toolMeta, ok bool) {
	var o toolObject
	if json.Unmarshal(raw, &o) != nil || o.Name == "" {
		return "", toolMeta{}, false
	}
	var known bool
	m.autonomy, known = autonomyOf(o.Autonomy)
	m.badAutonomy = !known
	var title string
	if json.Unmarshal(o.Title, &title) == nil {
		m.title = title
	}
	if len(o.Annotations) > 0 && string(o.Annotations) != "null" {
		var a mcp.ToolAnnotations
		if json.Unmarshal(o.Annotations, &a) == nil {
			m.annotations = &a
		}
	}
	m.exec = [4]registry.ExecField{o.Command, o.RunAs, o.BecomeMethod, o.BecomeFlags}
	return o.Name, m, true
}

// instMeta is the metadata of one instance's tools.
type instMeta struct {
	fp    uint64               // the instance's fingerprint when it was read (see fingerprints)
	key   string               // its contents, for interning
	tools map[string]*toolMeta // by tool name
}

// metaCache holds the metadata of the instances in the catalog. Only the
// watch loop (Server.update) uses it.
type metaCache struct {
	byID   map[string]*instMeta
	intern map[string]*instMeta // by key: instances of one kind of agent share one
}

func newMetaCache() *metaCache {
	return &metaCache{byID: map[string]*instMeta{}, intern: map[string]*instMeta{}}
}

// bulkAbove is the number of instances to read beyond which one listing
// of all instances is cheaper than a read per instance.
const bulkAbove = 32

// fingerprints returns, per instance id that has an entry in the view, a
// hash of its entries in the grouped answer (tool names and execution
// fields): when it changes, the instance posted other tools and its
// metadata is read again.
func fingerprints(tools []registry.Tool, v View) map[string]uint64 {
	fps := map[string]uint64{}
	h := fnv.New64a()
	for _, t := range tools {
		if !v.tool(t.Name) {
			continue
		}
		for _, e := range t.Hosts {
			if !v.host(e) {
				continue
			}
			h.Reset()
			var seed [8]byte
			prev := fps[e.InstanceID]
			for i := range seed {
				seed[i] = byte(prev >> (8 * i))
			}
			h.Write(seed[:])
			h.Write([]byte(t.Name))
			for _, f := range []registry.ExecField{e.Command, e.RunAs, e.BecomeMethod, e.BecomeFlags} {
				h.Write([]byte{0})
				if f.Set {
					h.Write([]byte{1})
				}
				h.Write([]byte(f.Value))
				h.Write(f.Raw)
			}
			fps[e.InstanceID] = h.Sum64()
		}
	}
	return fps
}

// refresh makes the cache hold the metadata of exactly the instances of
// fps, reading those that are new or whose fingerprint changed. Reads
// that fail leave the instance out (its tools count as confirm) and are
// tried again at the next update.
func (c *metaCache) refresh(ctx context.Context, src Source, v View, fps map[string]uint64, log *slog.Logger) {
	var missing []string
	for id, fp := range fps {
		if m := c.byID[id]; m == nil || m.fp != fp {
			missing = append(missing, id)
		}
	}
	for id := range c.byID {
		if _, ok := fps[id]; !ok {
			delete(c.byID, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		c.read(ctx, src, v, fps, missing, log)
	}
	if len(c.intern) > 2*len(c.byID)+64 {
		c.intern = map[string]*instMeta{}
		for _, m := range c.byID {
			c.intern[m.key] = m
		}
	}
}

// read reads the records of the instances missing.
func (c *metaCache) read(ctx context.Context, src Source, v View, fps map[string]uint64, missing []string, log *slog.Logger) {
	if len(missing) > bulkAbove {
		recs, err := src.Instances(ctx, client.Filter{Name: v.Agent, Labels: v.Labels})
		if err != nil {
			log.Warn("reading the instance records for x-autonomy failed; their tools count as confirm until the next change", "instances", len(missing), "err", err)
			return
		}
		want := make(map[string]bool, len(missing))
		for _, id := range missing {
			want[id] = true
		}
		for _, rec := range recs {
			if want[rec.ID] {
				c.store(rec, fps[rec.ID])
			}
		}
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, id := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rec, err := src.Instance(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				log.Warn("reading an instance record for x-autonomy failed; its tools count as confirm until the next change", "instance", id, "err", err)
				return
			}
			c.store(rec, fps[id])
		}()
	}
	wg.Wait()
}

// store keeps the metadata of a record.
func (c *metaCache) store(rec registry.Instance, fp uint64) {
	tools := make(map[string]*toolMeta, len(rec.Tools))
	for _, raw := range rec.Tools {
		if name, m, ok := readToolMeta(raw); ok {
			tools[name] = &m
		}
	}
	key := metaKey(tools)
	if m := c.intern[key]; m != nil && m.fp == fp {
		c.byID[rec.ID] = m
		return
	}
	m := &instMeta{fp: fp, key: key, tools: tools}
	c.intern[key] = m
	c.byID[rec.ID] = m
}

// metaKey writes the contents of an instance's metadata as a string.
func metaKey(tools map[string]*toolMeta) string {
	names := make([]string, 0, len(tools))
	for n := range tools {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		m := tools[n]
		ann, _ := json.Marshal(m.annotations)
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(m.autonomy.String())
		b.WriteByte(0)
		b.WriteString(m.title)
		b.WriteByte(0)
		b.Write(ann)
		for _, f := range m.exec {
			b.WriteByte(0)
			b.WriteString(f.String())
		}
		b.WriteByte(1)
	}
	return b.String()
}

// lookup returns the metadata of the tool name on instance id, or nil.
func (c *metaCache) lookup(id, name string) *toolMeta {
	if m := c.byID[id]; m != nil {
		return m.tools[name]
	}
	return nil
}
