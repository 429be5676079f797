package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/homeroom/homeroom/pkg/api"
)

const tokensCollection = "tokens"

// ErrUnauthenticated means a token does not authenticate anyone: malformed,
// unknown, revoked, expired, or of a user that no longer exists. Which of
// these it was is not said, to the caller or in the error.
var ErrUnauthenticated = errors.New("unauthenticated")

// A token is "hrt_<id>_<secret>": the id (8 random bytes, hex) names the
// token in listings, the audit trail and revocation; the secret is 32 random
// bytes. The store keeps the SHA-256 of the whole token, never the token: a
// hash of 256 random bits needs no salt or slow KDF to resist guessing.
const (
	tokenPrefix = "hrt_"
	idBytes     = 8
	secretBytes = 32
)

var (
	idLen     = hex.EncodedLen(idBytes)
	secretLen = base64.RawURLEncoding.EncodedLen(secretBytes)
)

// tokenDoc is a token as stored: its description and the hash.
type tokenDoc struct {
	api.Token `bson:",inline"`
	Hash      string `bson:"hash"`
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenID returns the id part of a token of this store's form, or "" when
// token does not have that form.
func TokenID(token string) string {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return ""
	}
	id := rest[:idLen]
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return ""
	}
	return id
}

// IssueToken makes a new token for an existing user and returns it, the only
// time it is ever available, with its description. expiresAt may be nil.
func (s *Store) IssueToken(ctx context.Context, user, description string, expiresAt *time.Time) (string, *api.Token, error) {
	if _, err := s.GetUser(ctx, user); err != nil {
		return "", nil, err
	}
	for attempt := 1; ; attempt++ {
		id := make([]byte, idBytes)
		secret := make([]byte, secretBytes)
		if _, err := rand.Read(id); err != nil {
			return "", nil, err
		}
		if _, err := rand.Read(secret); err != nil {
			return "", nil, err
		}
		token := tokenPrefix + hex.EncodeToString(id) + "_" + base64.RawURLEncoding.EncodeToString(secret)
		if expiresAt != nil {
			t := expiresAt.UTC().Truncate(time.Millisecond)
			expiresAt = &t
		}
		doc := tokenDoc{
			Token: api.Token{ID: hex.EncodeToString(id), User: user, Description: description, CreatedAt: now(),
				CreatedBy: ActorFrom(ctx).Name, ExpiresAt: expiresAt},
			Hash: hashToken(token),
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := s.db.Collection(tokensCollection).InsertOne(cctx, doc)
		cancel()
		if isDuplicateKey(err) && attempt < maxAttempts {
			continue // 64 random bits collided; draw again
		}
		if err != nil {
			return "", nil, fmt.Errorf("issue token: %w", err)
		}
		s.record(ctx, api.AuditEntry{Action: api.AuditTokenIssue, Target: "token/" + doc.ID,
			To: &api.AuditState{User: user, ExpiresAt: expiresAt}})
		return token, &doc.Token, nil
	}
}

// Authenticate returns the user a token belongs to, and the token's
// description. Nothing is cached: a token revoked, or a user deleted or
// changed, counts from the next call. Expiry and revocation are in the query
// filter, not left to a TTL index (FerretDB has none).
func (s *Store) Authenticate(ctx context.Context, token string) (*api.User, *api.Token, error) {
	id := TokenID(token)
	if id == "" {
		return nil, nil, ErrUnauthenticated
	}
	var doc tokenDoc
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	err := s.db.Collection(tokensCollection).FindOne(cctx, bson.D{
		{Key: "_id", Value: id},
		{Key: "revokedAt", Value: bson.D{{Key: "$exists", Value: false}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$gt", Value: time.Now().UTC()}}}},
		}},
	}).Decode(&doc)
	cancel()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashToken(token)), []byte(doc.Hash)) != 1 {
		return nil, nil, ErrUnauthenticated
	}
	u, err := s.GetUser(ctx, doc.User)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	return u, &doc.Token, nil
}

// GetToken returns a token's description, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (*api.Token, error) {
	var doc tokenDoc
	if err := s.getDoc(ctx, tokensCollection, id, &doc); err != nil {
		return nil, err
	}
	return &doc.Token, nil
}

// ListTokens returns the descriptions of a user's tokens, revoked and
// expired ones included, oldest first; with user "", everyone's.
func (s *Store) ListTokens(ctx context.Context, user string) ([]api.Token, error) {
	filter := bson.D{}
	if user != "" {
		filter = bson.D{{Key: "user", Value: user}}
	}
	docs, err := findAll[tokenDoc](ctx, s.db.Collection(tokensCollection), filter)
	if err != nil {
		return nil, err
	}
	out := make([]api.Token, len(docs))
	for i := range docs {
		out[i] = docs[i].Token
	}
	// By creation rather than by (random) id.
	sortTokens(out)
	return out, nil
}

func sortTokens(ts []api.Token) {
	slices.SortFunc(ts, func(a, b api.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// RevokeToken revokes a token: it stops working with the next request. A
// token already revoked is returned as it is.
func (s *Store) RevokeToken(ctx context.Context, id string) (*api.Token, error) {
	t := now()
	by := ActorFrom(ctx).Name
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	res, err := s.db.Collection(tokensCollection).UpdateOne(cctx,
		bson.D{{Key: "_id", Value: id}, {Key: "revokedAt", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revokedAt", Value: t}, {Key: "revokedBy", Value: by}}}})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("revoke token %q: %w", id, err)
	}
	tok, err := s.GetToken(ctx, id)
	if err != nil {
		return nil, err
	}
	if res.ModifiedCount == 1 {
		s.record(ctx, api.AuditEntry{Action: api.AuditTokenRevoke, Target: "token/" + id,
			From: &api.AuditState{User: tok.User, ExpiresAt: tok.ExpiresAt},
			To:   &api.AuditState{User: tok.User, ExpiresAt: tok.ExpiresAt, RevokedAt: tok.RevokedAt}})
	}
	return tok, nil
}

// revokeTokensOf revokes every live token of user, each recorded.
func (s *Store) revokeTokensOf(ctx context.Context, user string) error {
	toks, err := s.ListTokens(ctx, user)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.RevokedAt != nil {
			continue
		}
		if _, err := s.RevokeToken(ctx, t.ID); err != nil {
			return err
		}
	}
	return nil
}
