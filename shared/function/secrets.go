package function

// Secret file names a Spec lists in Secrets: keys of the platform Secret,
// files under CLOUDPHONE_SECRETS_DIR on Knative and /var/openfaas/secrets on
// OpenFaaS. A secret of one context alone is declared beside its function.
const (
	// SecretUserTokenKey signs user access tokens (the auth functions).
	SecretUserTokenKey = "user-token-key"
	// SecretUserTokenPublicKey checks user access tokens.
	SecretUserTokenPublicKey = "user-token-public-key"
	// SecretServiceTokenKey signs a context's service tokens (calls to
	// another context's /internal/v1 API).
	SecretServiceTokenKey = "service-token-key"
	// SecretServiceTokenPublicKey checks service tokens on /internal/v1 routes.
	SecretServiceTokenPublicKey = "service-token-public-key"
)
