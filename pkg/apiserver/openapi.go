package apiserver

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the API's description, kept as YAML for people and served
// as JSON. openapi_test.go holds it to the routes the server serves.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the embedded document once. It panics on a broken
// document, which the tests catch before any build ships.
func openAPIJSON() []byte {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		panic(fmt.Sprintf("openapi.yaml: %v", err))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("openapi.yaml: %v", err))
	}
	return b
}

func (s *Server) openAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.openapi)
}
