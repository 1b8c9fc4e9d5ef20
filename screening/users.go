package screening

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Role is what an account may do at the review station.
type Role string

const (
	// RoleTechnician sees results; it may not reclassify, sign or amend.
	RoleTechnician Role = "technician"
	// RoleReviewer reclassifies cells, signs and amends, signing with a PIN.
	RoleReviewer Role = "reviewer"
)

// ParseRole reads a role from the command line.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleTechnician, RoleReviewer:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want technician or reviewer", s)
}

// User is an account of the review station.
type User struct {
	ID   int64
	Name string
	Role Role
}

// ErrBadLogin is any failed login: the same words whether the name or the
// password was wrong, so the answer tells nobody which names exist.
var ErrBadLogin = errors.New("wrong name or password")

// ErrBadPIN: the signing PIN did not match.
var ErrBadPIN = errors.New("wrong PIN: not signed")

// hashCost is bcrypt's work factor (tests lower it). bcrypt rather than
// argon2id: its memory use is fixed and small on a 1-4 GB board beside the
// capture daemon, and its cost is one number.
var hashCost = bcrypt.DefaultCost

// Password and PIN rules, checked when an account is made.
const (
	MinPasswordLen = 10
	MinPINLen      = 4
	MaxPINLen      = 8
)

// CheckNewCredentials says what is wrong with a new account's name,
// password and PIN (a reviewer needs a PIN; a technician has none).
func CheckNewCredentials(name string, role Role, password, pin string) error {
	switch {
	case checkIdentityText(name) != nil:
		return errors.New("a name is 1-64 characters, no control characters, no leading or trailing spaces")
	case len(password) < MinPasswordLen:
		return fmt.Errorf("a password is at least %d characters", MinPasswordLen)
	case len(password) > 72:
		return errors.New("a password is at most 72 bytes (bcrypt's limit)")
	case role == RoleTechnician && pin != "":
		return errors.New("a technician signs nothing: no PIN")
	case role == RoleReviewer && (len(pin) < MinPINLen || len(pin) > MaxPINLen || strings.Trim(pin, "0123456789") != ""):
		return fmt.Errorf("a reviewer's PIN is %d-%d digits", MinPINLen, MaxPINLen)
	}
	return nil
}

// AddUser creates an account. Password and PIN are stored as bcrypt hashes.
func (s *Store) AddUser(ctx context.Context, name string, role Role, password, pin string) (User, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return User{}, err
	}
	if err := CheckNewCredentials(name, role, password, pin); err != nil {
		return User{}, fmt.Errorf("add user %q: %w", name, err)
	}
	pw, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	if err != nil {
		return User{}, err
	}
	var pinHash sql.NullString
	if pin != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(pin), hashCost)
		if err != nil {
			return User{}, err
		}
		pinHash = sql.NullString{String: string(h), Valid: true}
	}
	if err := s.writable(); err != nil {
		return User{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := User{Name: name, Role: role}
	err = s.db.QueryRowContext(ctx, `INSERT INTO users (name, role, password_hash, pin_hash, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`, name, string(role), string(pw), pinHash, formatTime(s.opt.Clock.Now())).Scan(&u.ID)
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return User{}, fmt.Errorf("add user %q: the name is taken", name)
	}
	return u, classify("add user", err)
}

// dummyHash is compared against when a name is unknown, so a wrong name
// costs the same time as a wrong password.
// Made at the first unknown name, not at start-up: the capture daemon
// links this package and never logs anyone in.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcrypt.MinCost)
	return h
})

// Authenticate checks a name and password.
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	var u User
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, role, password_hash FROM users WHERE name = ?`, name).
		Scan(&u.ID, &u.Name, &u.Role, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return User{}, ErrBadLogin
	}
	if err != nil {
		return User{}, classify("log in", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrBadLogin
	}
	return u, nil
}

// CheckPIN checks a reviewer's signing PIN.
func (s *Store) CheckPIN(ctx context.Context, userID int64, pin string) error {
	var hash sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT pin_hash FROM users WHERE id = ?`, userID).Scan(&hash); err != nil {
		return classify("check PIN", err)
	}
	if !hash.Valid || bcrypt.CompareHashAndPassword([]byte(hash.String), []byte(pin)) != nil {
		return ErrBadPIN
	}
	return nil
}

// UserByID reads an account (a session keeps only its ID, so a role changed
// or an account removed takes effect at the next request).
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.db.QueryRowContext(ctx, `SELECT id, name, role FROM users WHERE id = ?`, id).Scan(&u.ID, &u.Name, &u.Role)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrBadLogin
	}
	return u, classify("read user", err)
}
