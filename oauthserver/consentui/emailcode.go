package consentui

// Pages of the codes sent by email: ask for a code, enter it, then (to set or reset a
// password) choose the password.

// Purposes of an email code, as the forms carry them.
const (
	// CodePurposeSignIn: the code signs the person in (the email_otp method).
	CodePurposeSignIn = "signin"
	// CodePurposePassword: the code lets the person set their password (first time, after an
	// invitation-less pre-authorization or a sign-up, or a reset).
	CodePurposePassword = "password"
)

// EmailCodeRequestPage asks for the address to send a code to: fields email and purpose.
type EmailCodeRequestPage struct {
	Frame
	Form
	// Purpose is CodePurposeSignIn or CodePurposePassword.
	Purpose string
	// SignUp titles the page "Create an account" (a password purpose on the sign-up page).
	SignUp bool
	Email  string
	Error  string
	// SignInURL links back to the sign-in page.
	SignInURL string
}

// Heading is the page's title.
func (p EmailCodeRequestPage) Heading() string {
	switch {
	case p.SignUp:
		return "Create an account"
	case p.Purpose == CodePurposeSignIn:
		return "Sign in with a code"
	}
	return "Set or reset your password"
}

// EmailCodeEntryPage asks for the code that was sent: fields code_id and code.
type EmailCodeEntryPage struct {
	Frame
	Form
	Email   string
	CodeID  string
	Purpose string
	// Code fills in the code (the email's one-time link was opened).
	Code string
	// Notice says where the code went; Error why the last code was refused.
	Notice string
	Error  string
	// NewCodeURL is where to ask for another code.
	NewCodeURL string
}

// NewPasswordPage is where a person who proved their address chooses a password: fields
// ticket, password and password_confirm.
type NewPasswordPage struct {
	Frame
	Form
	Email  string
	Ticket string
	// Reset says the account already has a password (it is replaced, other browsers signed out).
	Reset                       bool
	PasswordError, ConfirmError string
}

// FieldErrors lists the page's field errors, in the order of the fields.
func (p NewPasswordPage) FieldErrors() []FieldError {
	var errs []FieldError
	for _, fe := range []FieldError{{"password", p.PasswordError}, {"password_confirm", p.ConfirmError}} {
		if fe.Message != "" {
			errs = append(errs, fe)
		}
	}
	return errs
}

// HasErrors reports whether the page shows an error.
func (p NewPasswordPage) HasErrors() bool { return len(p.FieldErrors()) > 0 }
