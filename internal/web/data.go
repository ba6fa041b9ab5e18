package web

// ConnectorLink is one entry of the connector choice page.
type ConnectorLink struct {
	ID   string
	Name string
	Type string
	URL  string
	// LastUsed marks the connector this browser chose last time.
	LastUsed bool
	// Unavailable marks a connector whose upstream cannot be reached now
	// (still a link: following it tries again and explains).
	Unavailable bool
}

// LoginData is the connector choice page.
type LoginData struct {
	Client     string
	Connectors []ConnectorLink
}

// PasswordData is the username/password page.
type PasswordData struct {
	PostURL  string
	Prompt   string // label of the username field
	Username string
	// Error is shown above the form ("Invalid username or password").
	Error string
	// ReqID and HMAC bind the form to its auth request.
	ReqID   string
	HMAC    string
	BackURL string
}

// ApprovalData is the consent page.
type ApprovalData struct {
	PostURL string
	Client  string
	Scopes  []string
	ReqID   string
	HMAC    string
}

// DeviceData is the user-code entry page.
type DeviceData struct {
	PostURL  string
	UserCode string
	Error    string
}

// DoneData is a page that says the login is complete.
type DoneData struct {
	Heading string
	Message string
}

// OOBData shows an authorization code to copy into a terminal.
type OOBData struct {
	Code string
}

// ErrorData is an error page. Message and Detail are escaped by the
// template like everything else.
type ErrorData struct {
	Status  int
	Heading string
	Message string
	Detail  string
	// RequestID lets an operator find the log line.
	RequestID string
}
