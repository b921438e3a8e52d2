// Package schematest checks baton's JSON output against the JSON Schemas
// kept in the repository (upgrade/schema), for tests: the unit tests of the
// report types, the CLI's and the integration tests' real output. Only
// tests import it, so the validator never reaches the baton binary.
package schematest

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is a compiled JSON Schema. Validate is safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// Load compiles the schema file at path (relative to the calling test's
// package directory), asserting formats such as date-time.
func Load(path string) (*Schema, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(abs)
	if err != nil {
		return nil, fmt.Errorf("schematest: %w", err)
	}
	return &Schema{s: s}, nil
}

// Validate checks that doc is one JSON value, with nothing after it but
// white space, that the schema accepts; the error lists every violation.
func (s *Schema) Validate(doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not one JSON document: %w", err)
	}
	return s.s.Validate(v)
}
