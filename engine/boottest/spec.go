package boottest

// Spec turns a boot test on and tunes it, for a conversion or a domain.
type Spec struct {
	Enabled bool `json:"enabled"`
	Options
}
