package api

import "time"

// SignInLink is a personal link that signs one person in on one student's
// host: the student, or a teacher (Holder names them) who opens the
// student's sandbox to help. A holder has at most one link per student:
// issuing a new one ends the old one and the sessions made with it.
type SignInLink struct {
	// ID is <class>/<student>/<holder>, with holder "" for the student.
	ID      string `bson:"_id"`
	ClassID string `bson:"classId"`
	Student string `bson:"student"`
	// Holder is "" for the student's own link, or the user name of the
	// teacher or admin it was issued to.
	Holder string `bson:"holder"`
	// Hash is the SHA-256 of the link's secret; the secret is not stored.
	Hash string `bson:"hash"`
	// UpSince binds the link to the Up it was issued in: after a Down it
	// no longer signs anyone in, even when the class comes Up again.
	UpSince   time.Time `bson:"upSince"`
	IssuedAt  time.Time `bson:"issuedAt"`
	IssuedBy  string    `bson:"issuedBy"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// SignInSession is a signed-in browser on one student's host.
type SignInSession struct {
	// ID is the SHA-256 of the session cookie's value.
	ID      string `bson:"_id"`
	ClassID string `bson:"classId"`
	Student string `bson:"student"`
	Holder  string `bson:"holder,omitempty"`
	// LinkHash is the hash of the link it was made with: a session lives
	// only as long as that link is its holder's current one.
	LinkHash  string    `bson:"linkHash"`
	UpSince   time.Time `bson:"upSince"`
	CreatedAt time.Time `bson:"createdAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// LinkID names the link of holder ("" for the student) on student's host.
func LinkID(classID, student, holder string) string {
	return classID + "/" + student + "/" + holder
}

// SignInPath is the part of every student's host that belongs to Homeroom,
// not to the sandbox: links are followed under it, and the sandbox never
// sees a request for it.
const SignInPath = "/.homeroom/"

// SignInURL is the address that signs in with secret on a student's host.
func SignInURL(classID, student, domain, secret string) string {
	return Endpoint(classID, student, domain) + SignInPath + "signin/" + secret
}
