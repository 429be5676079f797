package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

// Users and their tokens: admins manage them; a user may list and revoke
// their own tokens.

// whoamiResponse is who the caller is, as this request authenticated them.
type whoamiResponse struct {
	Name     string   `json:"name"`
	Role     api.Role `json:"role"`
	Subjects []string `json:"subjects"`
	TokenID  string   `json:"tokenId,omitempty"`
}

func (s *Server) whoami(c echo.Context) error {
	p := who(c)
	subjects := p.subjects
	if subjects == nil {
		subjects = []string{}
	}
	return c.JSON(http.StatusOK, whoamiResponse{Name: p.name, Role: p.role, Subjects: subjects, TokenID: p.tokenID})
}

func userName(c echo.Context) (string, error) {
	name := c.Param("name")
	if err := api.ValidateUserName(name); err != nil {
		return "", apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return name, nil
}

func (s *Server) listUsers(c echo.Context) error {
	users, err := s.store.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	return writeList(c, users)
}

func (s *Server) getUser(c echo.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	u, err := s.store.GetUser(c.Request().Context(), name)
	if err != nil {
		return recordError(err, "user", name)
	}
	return c.JSON(http.StatusOK, u)
}

func (s *Server) putUser(c echo.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	b, err := parseUser(body)
	if err != nil {
		return err
	}
	defer s.signIn.forgetUser(name)
	u, ch, err := s.store.PutUser(c.Request().Context(), name, b.Role, b.Subjects)
	if err != nil {
		return recordError(err, "user", name)
	}
	return c.JSON(changeStatus(ch), u)
}

func (s *Server) deleteUser(c echo.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	if p := who(c); p.name == name {
		return apiError(http.StatusConflict, "self", "an admin cannot delete themselves; another admin can")
	}
	defer s.signIn.forgetUser(name)
	if err := s.store.DeleteUser(c.Request().Context(), name); err != nil {
		return recordError(err, "user", name)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) grantSubject(c echo.Context) error {
	return s.changeGrant(c, s.store.GrantSubject)
}

func (s *Server) revokeSubject(c echo.Context) error {
	return s.changeGrant(c, s.store.RevokeSubject)
}

func (s *Server) changeGrant(c echo.Context, op func(ctx context.Context, name, subject string) (*api.User, store.Change, error)) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	defer s.signIn.forgetUser(name)
	subject, err := pathID(c, "subject", "subject")
	if err != nil {
		return err
	}
	u, _, err := op(c.Request().Context(), name, subject)
	if err != nil {
		return recordError(err, "user", name)
	}
	return c.JSON(http.StatusOK, u)
}

// issuedToken is a new token: the secret, shown this once, and its
// description.
type issuedToken struct {
	Secret string `json:"token"`
	api.Token
}

func (s *Server) issueToken(c echo.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	b, err := parseToken(body)
	if err != nil {
		return err
	}
	var expiresAt *time.Time
	if b.ExpiresInSeconds > 0 {
		t := time.Now().Add(time.Duration(b.ExpiresInSeconds) * time.Second)
		expiresAt = &t
	}
	secret, tok, err := s.store.IssueToken(c.Request().Context(), name, b.Description, expiresAt)
	if err != nil {
		return recordError(err, "user", name)
	}
	// Neither proxies nor browsers may keep it.
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, issuedToken{Secret: secret, Token: *tok})
}

// listTokens lists a user's tokens (never the secrets): an admin anyone's, a
// teacher their own.
func (s *Server) listTokens(c echo.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	if p := who(c); !p.admin() && p.name != name {
		return apiError(http.StatusForbidden, "forbidden", "only an admin may list another user's tokens")
	}
	if _, err := s.store.GetUser(c.Request().Context(), name); err != nil {
		return recordError(err, "user", name)
	}
	toks, err := s.store.ListTokens(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return writeList(c, toks)
}

var tokenIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// revokeToken revokes a token at once: an admin any, a user their own (a
// teacher who leaked a token need not wait for an admin).
func (s *Server) revokeToken(c echo.Context) error {
	id := c.Param("token")
	if !tokenIDPattern.MatchString(id) {
		return apiError(http.StatusBadRequest, "invalid_id", fmt.Sprintf("token id %q is not 16 hex digits", id))
	}
	ctx := c.Request().Context()
	p := who(c)
	tok, err := s.store.GetToken(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound) && !p.admin():
		return apiError(http.StatusForbidden, "forbidden", "only an admin may revoke another user's token")
	case err != nil:
		return recordError(err, "token", id)
	case !p.admin() && tok.User != p.name:
		return apiError(http.StatusForbidden, "forbidden", "only an admin may revoke another user's token")
	}
	tok, err = s.store.RevokeToken(ctx, id)
	if err != nil {
		return recordError(err, "token", id)
	}
	return c.JSON(http.StatusOK, tok)
}
