package httpapi

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strings"
)

//go:embed dashboard/index.html dashboard/style.css dashboard/app.js
var dashboardFiles embed.FS

// dashboardPage is the dashboard: one HTML page with its style and script
// inline, no external assets. It reads /v1/cluster (relative to the page)
// and redraws itself every two seconds.
var dashboardPage, dashboardCSP = buildDashboard()

// buildDashboard puts the style and the script into the page and returns
// it with a Content-Security-Policy that allows exactly those two inline
// blocks (by hash) and requests to this origin, and nothing else.
func buildDashboard() ([]byte, string) {
	read := func(name string) string {
		b, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			panic("httpapi: dashboard: " + err.Error()) // embedded at build time
		}
		return string(b)
	}
	style, script := read("style.css"), read("app.js")
	page := strings.NewReplacer("@STYLE@", style, "@SCRIPT@", script).Replace(read("index.html"))
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; connect-src 'self'; style-src " + hash(style) + "; script-src " + hash(script) +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(page), csp
}

func serveDashboard(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(dashboardPage)
	return nil
}
