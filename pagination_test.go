// pagination_test.go checks ?limit=N on /instances, /tools and /hosts: Link
// headers to the next page, walks that never skip or repeat an item, no
// empty last page, sparse listings and bad parameters.

package registry_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

func TestPagination(t *testing.T) {
	h := newHarness(t, registry.Options{})
	pagingFleet(h)
	targets := []string{
		"/instances", "/instances?active=true", "/instances?host=ha", "/instances?name=db", "/instances?host=hb&name=app",
		"/tools", "/tools?active=false", "/tools?host=hc", "/tools?host=hb&active=false",
		"/hosts", "/hosts?active=false", "/hosts?name=app", "/hosts?host=ha&active=false",
	}
	for _, target := range targets {
		all := h.get(target).([]any)
		if len(all) == 0 && !strings.Contains(target, "host=") {
			t.Fatalf("%s is empty: the fleet is wrong", target)
		}
		for _, limit := range []int{1, 2, 3, len(all), len(all) + 1, 100} {
			if limit == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/limit=%d", target, limit), func(t *testing.T) {
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				pages := h.walkPages(fmt.Sprintf("%s%slimit=%d", target, sep, limit))
				var got []any
				for i, p := range pages {
					if len(p) > limit {
						t.Errorf("page %d has %d items, more than the limit %d", i, len(p), limit)
					}
					if i < len(pages)-1 && len(p) != limit {
						t.Errorf("page %d has %d items and links to another, want the limit %d", i, len(p), limit)
					}
					got = append(got, p...)
				}
				if diff := cmp.Diff(all, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("pages differ from the unpaged answer (-want +got):\n%s", diff)
				}
				if limit >= len(all) && len(pages) != 1 {
					t.Errorf("%d pages for %d items with limit %d, want 1", len(pages), len(all), limit)
				}
				if last := pages[len(pages)-1]; len(pages) > 1 && len(last) == 0 {
					t.Errorf("the last page, reached through a Link, is empty")
				}
			})
		}
	}
}

// A Link promises a next page with items, also when a filter (name, active)
// leaves out the items after the last page.
func TestPaginationNoEmptyLastPage(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	h.register("b", "app", "h2")
	h.register("c", "db", "h3") // sorts after the app entries of /hosts
	h.register("d", "app", "h4")
	h.deregister("d") // registered last: filtered out of active listings
	for _, target := range []string{
		"/hosts?name=app&limit=2",
		"/hosts?limit=3",
		"/instances?active=true&limit=3",
		"/instances?name=app&active=true&limit=2",
	} {
		t.Run(target, func(t *testing.T) {
			pages := h.walkPages(target)
			last := pages[len(pages)-1]
			if len(pages) > 1 && len(last) == 0 {
				t.Errorf("%d pages; the last one, reached through a Link, is empty: %v", len(pages), pages)
			}
		})
	}
}

func TestPaginationFirstPage(t *testing.T) {
	h := newHarness(t, registry.Options{})
	for i := range 3 {
		h.register(fmt.Sprint("id", i), "app", "h")
	}
	rec := h.must(http.StatusOK, "GET", "/instances?limit=2", "")
	if n := len(decodeJSON(t, rec.Body.Bytes()).([]any)); n != 2 {
		t.Errorf("first page has %d items, want 2", n)
	}
	link := rec.Header().Get("Link")
	m := linkRE.FindStringSubmatch(link)
	if m == nil || !strings.HasPrefix(m[1], "?") || !strings.Contains(m[1], "limit=2") || !strings.Contains(m[1], "cursor=") {
		t.Errorf(`Link = %q, want <?cursor=...&limit=2>; rel="next"`, link)
	}
	// No Link on the last page, nor without a limit.
	if link := h.must(http.StatusOK, "GET", "/instances?limit=3", "").Header().Get("Link"); link != "" {
		t.Errorf("Link = %q on the only page, want none", link)
	}
	if link := h.must(http.StatusOK, "GET", "/instances", "").Header().Get("Link"); link != "" {
		t.Errorf("Link = %q without a limit, want none", link)
	}
}

func TestPaginationBadParams(t *testing.T) {
	h := newHarness(t, registry.Options{})
	pagingFleet(h)
	tests := []struct {
		query string
		loc   string
	}{
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=abc", "limit"},
		{"limit=1.5", "limit"},
		{"limit=1e3", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"cursor=!!!", "cursor"},
		{"cursor=a%20b", "cursor"},
		{"limit=2&cursor=***", "cursor"},
	}
	for _, ep := range []string{"/instances", "/tools", "/hosts"} {
		for _, tt := range tests {
			t.Run(ep+"?"+tt.query, func(t *testing.T) {
				if diff := cmp.Diff([][]string{{"query", tt.loc}}, detailLocs(t, h.do("GET", ep+"?"+tt.query, ""))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("instances cursor that is not one", func(t *testing.T) {
		// "abc", base64url-encoded: not an instance cursor.
		if diff := cmp.Diff([][]string{{"query", "cursor"}}, detailLocs(t, h.do("GET", "/instances?cursor=YWJj", ""))); diff != "" {
			t.Errorf("locs mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestSparseListing pages through listings where a filter leaves out long
// runs of items (thousands in a row), in every page size.
func TestSparseListing(t *testing.T) {
	h := newHarness(t, registry.Options{})
	const n = 9000
	for i := range n {
		id := fmt.Sprintf("id-%05d", i)
		h.register(id, "app", fmt.Sprintf("h%05d", i))
		h.postTools(id, fmt.Sprintf(`{"name":"t%05d"}`, i))
		if i%4500 != 4499 && i != 0 {
			h.deregister(id)
		}
	}
	for _, target := range []string{"/instances?active=true", "/tools", "/hosts", "/instances?name=app&active=true", "/hosts?name=app"} {
		all := h.get(target).([]any)
		if len(all) != 3 {
			t.Fatalf("%s: %d items, want 3", target, len(all))
		}
		for _, limit := range []int{1, 2, 3} {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			pages := h.walkPages(fmt.Sprintf("%s%slimit=%d", target, sep, limit))
			var got []any
			for i, p := range pages {
				if i < len(pages)-1 && len(p) != limit || len(p) == 0 {
					t.Errorf("%s limit %d: page %d has %d items", target, limit, i, len(p))
				}
				got = append(got, p...)
			}
			if diff := cmp.Diff(all, got); diff != "" {
				t.Errorf("%s limit %d: pages differ from the unpaged answer (-want +got):\n%s", target, limit, diff)
			}
		}
	}
}
