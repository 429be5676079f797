package apiserver_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// shape makes an OpenAPI path and an echo route comparable: every parameter
// ({classId}, :id, and echo's trailing *) becomes {}.
func shape(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || p == "*" || strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = "{}"
		}
	}
	return strings.Join(parts, "/")
}

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type operation struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Parameters  []map[string]any           `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// TestOpenAPIMatchesRoutes: every route the server serves is documented,
// every documented operation is served, each with its path parameters
// declared, every $ref resolves, and an operation documented as needing no
// token is exactly one that answers without one.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	r := e.ok2(200, "GET", "/api/v1/openapi.json")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Fatalf("not an OpenAPI 3 document: %.200s", r.body)
	}

	served := map[string]bool{}
	for _, rt := range e.servedRoutes() {
		// The teacher pages are files for a browser, not API calls; their
		// own tests cover them (ui_test.go, test/browser).
		if rt.Path == "/" || rt.Path == "/ui" || strings.HasPrefix(rt.Path, "/ui/") {
			continue
		}
		served[rt.Method+" "+shape(rt.Path)] = true
	}
	documented := map[string]bool{}
	operationIDs := map[string]string{}
	paramName := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		var pathParams []map[string]any
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &pathParams); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			if !slices.Contains(httpMethods, method) {
				t.Errorf("%s: unknown key %q", path, method)
				continue
			}
			key := strings.ToUpper(method) + " " + shape(path)
			documented[key] = true
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", key)
			} else if other, dup := operationIDs[op.OperationID]; dup {
				t.Errorf("operationId %s of %s is also %s's", op.OperationID, key, other)
			}
			operationIDs[op.OperationID] = key

			// Each {param} of the path is declared in the path.
			declared := map[string]bool{}
			for _, p := range append(slices.Clone(pathParams), op.Parameters...) {
				if ref, ok := p["$ref"].(string); ok {
					var resolved map[string]any
					json.Unmarshal(doc.Components["parameters"][strings.TrimPrefix(ref, "#/components/parameters/")], &resolved)
					p = resolved
				}
				if p["in"] == "path" {
					declared[p["name"].(string)] = true
				}
			}
			for _, m := range paramName.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %s is not declared", key, m[1])
				}
			}

			// A success, and the errors every protected call can give.
			hasSuccess := false
			for code := range op.Responses {
				hasSuccess = hasSuccess || strings.HasPrefix(code, "2")
			}
			open := op.Security != nil && len(*op.Security) == 0
			if !hasSuccess {
				t.Errorf("%s documents no success", key)
			}
			if !open && (op.Responses["401"] == nil || op.Responses["429"] == nil) {
				t.Errorf("%s needs a token but documents no 401 or no 429", key)
			}

			// Documented as open ⇔ answers without a token.
			p := strings.NewReplacer("{classId}", "x", "{studentId}", "x", "{path}", "x", "{runId}", runA,
				"{subject}", "x", "{name}", "x", "{tokenId}", "0123456789abcdef").Replace(path)
			resp := e.do(strings.ToUpper(method), p, "", "Authorization", "")
			if open == (resp.code == http.StatusUnauthorized) {
				t.Errorf("%s is documented with open=%v but answers %d without a token", key, open, resp.code)
			}
		}
	}

	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("served but not documented:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("documented but not served:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(served) < 35 {
		t.Errorf("only %d routes served", len(served))
	}

	// Every $ref resolves.
	refs := regexp.MustCompile(`"\$ref":"#/components/([^/"]+)/([^"]+)"`).FindAllStringSubmatch(string(r.body), -1)
	if len(refs) < 50 {
		t.Errorf("only %d $refs found; is the pattern right?", len(refs))
	}
	for _, m := range refs {
		if doc.Components[m[1]][m[2]] == nil {
			t.Errorf("$ref #/components/%s/%s does not resolve", m[1], m[2])
		}
	}
}
