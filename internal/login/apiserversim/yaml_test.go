package apiserversim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

var yamlDocs = map[string]string{
	"nested": `
# a comment
apiVersion: apiserver.config.k8s.io/v1beta1   # trailing comment
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://issuer.example/dex#not-a-comment
    audiences:
      - kubernetes
      - "kubectl"
    audienceMatchPolicy: MatchAny
  claimMappings:
    username:
      claim: email
      prefix: ""
    groups: {claim: groups, prefix: 'gh:'}
    uid: {}
  claimValidationRules:
  - claim: hd
    requiredValue: example.com
  - expression: 'claims.?email_verified.orValue(false) == true'
    message: "email must be verified: \"yes\""
`,
	"flow and block scalars": `kind: AuthenticationConfiguration
jwt:
-   issuer:
      url: https://a
      audiences: [kubernetes, 'other', "third"]
    claimMappings:
      username:
        expression: |
          'gh:' + claims.preferred_username
      groups:
        expression: >-
          claims.groups.map(g,
          'gh:' + g)
      extra:
      - key: example.com/team
        valueExpression: claims.team
    userValidationRules:
    - expression: "!user.username.startsWith('system:')"
      message: it's reserved
`,
	"sequence of scalars under a key at the same indentation": `kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://b
    audiences:
    - x
    - y
  claimMappings:
    username:
      claim: sub
      prefix: null
`,
}

func TestParseYAMLMatchesYAMLv3(t *testing.T) {
	docs := map[string][]byte{}
	for name, d := range yamlDocs {
		docs[name] = []byte(d)
	}
	for _, f := range []string{"seed", "seed-email"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "cluster", "testdata", f, "golden", "authentication-config.yaml")); err == nil {
			docs["rendered "+f] = b
		}
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			var want AuthenticationConfiguration
			if err := yaml.Unmarshal(doc, &want); err != nil {
				t.Fatalf("yaml.v3: %v", err)
			}
			v, err := parseYAML(doc)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			var got AuthenticationConfiguration
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				gb, _ := json.MarshalIndent(got, "", " ")
				wb, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("parseYAML:\n%s\nyaml.v3:\n%s", gb, wb)
			}
		})
	}
}

func TestParseYAMLRefusesWhatItDoesNotKnow(t *testing.T) {
	for name, doc := range map[string]string{
		"anchor":          "a: &x 1\nb: *x\n",
		"tag":             "a: !!str 1\n",
		"multi-line flow": "a: [1,\n 2]\n",
		"bad indentation": "a:\n  b: 1\n c: 2\n",
		"unterminated":    "a: 'x\n",
		"duplicate key":   "a: 1\na: 2\n",
		"nested flow":     "a: [[1]]\n",
		"not a key":       "just text\n",
	} {
		t.Run(name, func(t *testing.T) {
			if v, err := parseYAML([]byte(doc)); err == nil {
				t.Fatalf("parsed %q as %v", doc, v)
			}
		})
	}
}
