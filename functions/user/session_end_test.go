package user_test

import (
	"testing"

	"github.com/cloudphone/cloudphone/functions/user"
	"github.com/cloudphone/cloudphone/functions/user/usertest"
	"github.com/cloudphone/cloudphone/shared/apierr"
	"github.com/cloudphone/cloudphone/shared/auth"
)

// Whatever ends a session ends its access tokens on the next request, not
// when they expire: a disabled user, changed roles, a reused refresh token, a
// logout (every access token of that session) and a logout everywhere.
func TestEndingASessionRefusesItsAccessTokensAtOnce(t *testing.T) {
	t.Parallel()
	type sessions struct{ a1, a2, b user.Tokens } // a1, a2: one session (a2 by refresh); b: another
	cases := []struct {
		name               string
		end                func(t *testing.T, env usertest.Env, u user.User, s *sessions)
		refusedA, refusedB bool
	}{
		{"disabled by an admin", func(t *testing.T, env usertest.Env, u user.User, _ *sessions) {
			_, adminID := env.Admin(t)
			if _, err := env.Service.SetStatus(ctx, auth.Principal{UserID: adminID}, u.ID, user.StatusRequest{Status: user.StatusDisabled}); err != nil {
				t.Fatal(err)
			}
		}, true, true},
		{"roles changed by an admin", func(t *testing.T, env usertest.Env, u user.User, _ *sessions) {
			_, adminID := env.Admin(t)
			if _, err := env.Service.SetRoles(ctx, auth.Principal{UserID: adminID}, u.ID, user.RolesRequest{Roles: []string{"user", "admin"}}); err != nil {
				t.Fatal(err)
			}
		}, true, true},
		{"a used refresh token is replayed", func(t *testing.T, env usertest.Env, _ user.User, s *sessions) {
			if _, err := env.Service.Refresh(ctx, s.a1.RefreshToken); !apierr.Is(err, apierr.Unauthorized) {
				t.Fatalf("replayed refresh token: %v", err)
			}
		}, true, false},
		{"logout with one of the session's tokens", func(t *testing.T, env usertest.Env, _ user.User, s *sessions) {
			p, err := env.Service.Verifier().Verify(ctx, s.a1.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Service.Logout(ctx, p, s.a2.RefreshToken, false); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"logout everywhere", func(t *testing.T, env usertest.Env, _ user.User, s *sessions) {
			p, err := env.Service.Verifier().Verify(ctx, s.b.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Service.Logout(ctx, p, s.b.RefreshToken, true); err != nil {
				t.Fatal(err)
			}
		}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := usertest.New(t)
			u := env.Register(t, "sam")
			var s sessions
			s.a1 = env.Login(t, "sam")
			var err error
			if s.a2, err = env.Service.Refresh(ctx, s.a1.RefreshToken); err != nil {
				t.Fatal(err)
			}
			s.b = env.Login(t, "sam")
			for _, tok := range []string{s.a1.AccessToken, s.a2.AccessToken, s.b.AccessToken} {
				if _, err := env.Service.Verifier().Verify(ctx, tok); err != nil {
					t.Fatalf("before: %v", err)
				}
			}
			c.end(t, env, u, &s)
			for _, tc := range []struct {
				name    string
				token   string
				refused bool
			}{{"session a, first token", s.a1.AccessToken, c.refusedA}, {"session a, refreshed token", s.a2.AccessToken, c.refusedA},
				{"session b", s.b.AccessToken, c.refusedB}} {
				_, err := env.Service.Verifier().Verify(ctx, tc.token)
				if tc.refused && !apierr.Is(err, apierr.Unauthorized) {
					t.Errorf("%s: accepted (%v), want refused at once", tc.name, err)
				}
				if !tc.refused && err != nil {
					t.Errorf("%s: refused (%v), want accepted", tc.name, err)
				}
			}
		})
	}
}
