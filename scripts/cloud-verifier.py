#!/usr/bin/env python3
"""A stand-in for the clouds, built on their own reference libraries, so that the
tokens tether makes are checked by an implementation that is not tether's.

One HTTP server on 127.0.0.1 (its port is printed as `READY <port>`) serves:

- `/webhook`: the kube-apiserver's token webhook (TokenReview). EKS tokens are
  checked like aws-iam-authenticator does: the presigned STS URL is re-derived
  and its SigV4 signature recomputed by botocore with the known secret key and
  this cluster's name as `x-k8s-aws-id`; expiry (15 minutes) and the signed
  headers are checked, and the token's form as aws-iam-authenticator holds it
  (unpadded base64url, known query parameters, each once); the ARN is mapped
  to a user. Google and Entra tokens are
  the ones this server issued.
- `/authorize`: the API server's authorization webhook, after Node and RBAC:
  it allows what the configuration's `authz_allow` names and has no opinion
  on the rest, so SelfSubjectRulesReviews answer `incomplete: true`.
- `/sts/`: AWS STS: GetCallerIdentity (presigned, checked by botocore),
  AssumeRole (Authorization header, checked by botocore), and
  AssumeRoleWithWebIdentity.
- `/eks/clusters[/NAME]`: the EKS API's ListClusters and DescribeCluster,
  SigV4-checked by botocore.
- `/google/token`: the OAuth2 token endpoint; the JWT-bearer assertion is
  verified by google-auth (signature with the service account's certificate,
  audience, iat/exp).
- `/entra/<tenant>/oauth2/v2.0/token`: an Entra ID-shaped client-credentials
  endpoint (AADSTS error codes), with a client secret or, for AKS workload
  identity, a federated client assertion: a service-account JWT this server
  minted at start (written to `azure.federated.token_file`), verified by
  google-auth's JWT code (RS256 signature, `api://AzureADTokenExchange`
  audience, expiry) and matched to the client's federated issuer and subject.
- `/computeMetadata/v1/instance/service-accounts/default/{token,email}`: the
  GKE metadata server of a pod with Workload Identity; like the real one it
  answers only requests carrying `Metadata-Flavor: Google`, and the token
  must be asked for with the cloud-platform and userinfo.email scopes.
- `/aws/pod-identity`: the EKS Pod Identity agent: the Authorization header
  must be the pod's token; answers temporary credentials of the pod's role
  (which STS and the webhook then check with botocore like any other).

- `/google/lifetime/<seconds>/token`: the token endpoint, issuing tokens
  that live that long (a refresh test makes them outlive the client's
  refresh margin by little).
- `/issued` (POST `{"token", "user", "lifetime"}`): the token webhook accepts
  `token` as `user` for `lifetime` seconds (an identity provider of a test,
  e.g. an OpenID Connect issuer, registers the ID tokens it hands out).
- `/counts`: how many requests each route has had (JSON), so a test can
  await a token being fetched again.

A path may start with `/skew/<seconds>/`: that request is judged by a clock
that far ahead (a delegate whose clock is behind), and answered with that
`Date`. The configuration is a JSON file (argv[1]). The server exits when its
stdin closes, so it never outlives the test that started it.
"""

import base64
import datetime
import email.utils
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.auth import jwt

CONFIG = json.load(open(sys.argv[1]))
AWS = CONFIG["aws"]
GOOGLE = CONFIG["google"]
AZURE = CONFIG["azure"]
LOCK = threading.Lock()
# Temporary AWS credentials issued here: akid -> {secret, token, arn, exp}
TEMP = {}
# Access tokens issued here: token -> {user, groups, exp}
ISSUED = {}
# Requests per route.
COUNTS = {}
AUTH_PARAMS = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
}
TOKEN_PREFIX = "k8s-aws-v1."


class Rejected(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def amz_time(s):
    return datetime.datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def amz_fmt(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def lookup_keys(akid, now):
    """(secret, session token, arn) of an access key, or an STS error."""
    if akid in AWS["keys"]:
        k = AWS["keys"][akid]
        if k.get("expired"):
            # Temporary keys whose session has ended, as STS answers them.
            raise Rejected(400, "ExpiredToken", "The security token included in the request is expired")
        return k["secret"], k.get("token"), k["arn"]
    with LOCK:
        t = TEMP.get(akid)
    if t is None:
        raise Rejected(403, "InvalidClientTokenId",
                       "The security token included in the request is invalid.")
    if now > t["exp"]:
        raise Rejected(400, "ExpiredToken", "The security token included in the request is expired")
    return t["secret"], t["token"], t["arn"]


def verify_presigned(url, cluster, now, max_age):
    """botocore re-derives the SigV4 query signature of a presigned
    GetCallerIdentity URL; returns the signer's ARN."""
    u = urlsplit(url)
    pairs = parse_qsl(u.query, keep_blank_values=True)
    p = dict(pairs)
    for need in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                 "X-Amz-Signature"):
        if need not in p:
            raise Rejected(403, "AccessDenied", f"missing {need}")
    if p.get("Action") != "GetCallerIdentity":
        raise Rejected(403, "AccessDenied", "not GetCallerIdentity")
    signed = p["X-Amz-SignedHeaders"].split(";")
    if "x-k8s-aws-id" not in signed:
        raise Rejected(403, "AccessDenied", "x-k8s-aws-id is not signed")
    akid, day, region, service, term = p["X-Amz-Credential"].split("/")
    if service != "sts" or term != "aws4_request":
        raise Rejected(403, "SignatureDoesNotMatch", "bad credential scope")
    secret, token, arn = lookup_keys(akid, now)
    if token is not None and p.get("X-Amz-Security-Token") != token:
        raise Rejected(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    signed_at = amz_time(p["X-Amz-Date"])
    if signed_at - now > 5 * 60:
        raise Rejected(403, "SignatureDoesNotMatch",
                       f"Signature not yet current: {p['X-Amz-Date']} is still later than "
                       f"{amz_fmt(now + 300)} ({amz_fmt(now)} + 5 min.)")
    if now - signed_at > max_age:
        raise Rejected(403, "RequestExpired", "Request has expired.")
    base = [(k, v) for k, v in pairs if k not in AUTH_PARAMS]
    req = AWSRequest(method="GET",
                     url=urlunsplit((u.scheme, u.netloc, u.path, urlencode(base), "")),
                     headers={"x-k8s-aws-id": cluster})
    signer = SigV4QueryAuth(Credentials(akid, secret, token), "sts", region,
                            expires=int(p["X-Amz-Expires"]))
    req.context["timestamp"] = p["X-Amz-Date"]
    signer._modify_request_before_signing(req)
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if not hmac.compare_digest(expected, p["X-Amz-Signature"]):
        raise Rejected(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you "
                       "provided. Check your AWS Secret Access Key and signing method.")
    return arn, region


def verify_header_signed(handler, service, body, now):
    """botocore recomputes the Authorization header's signature; returns
    (arn, region)."""
    auth = handler.headers.get("Authorization", "")
    m = re.match(r"AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=(\w+)", auth)
    if not m:
        raise Rejected(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    akid, day, region, svc, _ = m.group(1).split("/")
    secret, token, arn = lookup_keys(akid, now)
    amz_date = handler.headers.get("X-Amz-Date", "")
    if abs(amz_time(amz_date) - now) > 5 * 60:
        raise Rejected(403, "SignatureDoesNotMatch",
                       f"Signature expired: {amz_date} is now earlier than {amz_fmt(now - 300)} "
                       f"({amz_fmt(now)} - 5 min.)")
    headers = {h: handler.headers.get(h, "") for h in m.group(2).split(";") if h != "host"}
    url = f"http://{handler.headers['Host']}{handler.path_unskewed_full}"
    req = AWSRequest(method=handler.command, url=url, data=body, headers=headers)
    signer = SigV4Auth(Credentials(akid, secret, token), svc, region)
    req.context["timestamp"] = amz_date
    signer._modify_request_before_signing(req)
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if svc != service or not hmac.compare_digest(expected, m.group(3)):
        raise Rejected(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you provided.")
    return arn, region


def xml(action, inner):
    ns = "https://sts.amazonaws.com/doc/2011-06-15/"
    return (f'<{action}Response xmlns="{ns}"><{action}Result>{inner}</{action}Result>'
            f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>"
            f"</{action}Response>")


def issue_temp(arn, now):
    akid = "ASIA" + secrets.token_hex(8).upper()
    t = {"secret": secrets.token_urlsafe(30), "token": "FQoG" + secrets.token_urlsafe(60),
         "arn": arn, "exp": now + 3600}
    with LOCK:
        TEMP[akid] = t
    exp = datetime.datetime.fromtimestamp(t["exp"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"<Credentials><AccessKeyId>{akid}</AccessKeyId><SecretAccessKey>{t['secret']}"
            f"</SecretAccessKey><SessionToken>{t['token']}</SessionToken><Expiration>{exp}"
            f"</Expiration></Credentials><AssumedRoleUser><Arn>{arn}</Arn><AssumedRoleId>AROA"
            f"{secrets.token_hex(6).upper()}:tether</AssumedRoleId></AssumedRoleUser>")


def issue_temp_json(arn, now):
    """Temporary credentials as the EKS Pod Identity agent (and ECS) answer them."""
    akid = "ASIA" + secrets.token_hex(8).upper()
    t = {"secret": secrets.token_urlsafe(30), "token": "FQoG" + secrets.token_urlsafe(60),
         "arn": arn, "exp": now + 3600}
    with LOCK:
        TEMP[akid] = t
    exp = datetime.datetime.fromtimestamp(t["exp"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"AccessKeyId": akid, "SecretAccessKey": t["secret"], "Token": t["token"],
            "AccountId": arn.split(":")[4], "Expiration": exp}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("cloud-verifier: " + (fmt % args) + "\n")

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.now, usegmt=True)

    def reply(self, status, body, ctype="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def prepare(self):
        self.now = time.time()
        path = self.path
        m = re.match(r"^/skew/(-?\d+)(/.*)$", path)
        if m:
            self.now += int(m.group(1))
        self.path_unskewed_full = path
        self.route = urlsplit(m.group(2) if m else path).path
        with LOCK:
            COUNTS[self.route] = COUNTS.get(self.route, 0) + 1
        n = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(n) if n else b""

    def do_GET(self):
        self.prepare()
        try:
            if self.route.rstrip("/").endswith("/sts") or self.route == "/sts/":
                self.sts_get()
            elif self.route.startswith("/eks/clusters"):
                self.eks()
            elif self.route.startswith("/computeMetadata/v1/instance/service-accounts/default/"):
                self.metadata()
            elif self.route == "/aws/pod-identity":
                self.pod_identity()
            elif self.route == "/counts":
                with LOCK:
                    counts = dict(COUNTS)
                self.reply(200, json.dumps(counts))
            else:
                self.reply(404, "{}")
        except Rejected as r:
            self.error(r)

    def do_POST(self):
        self.prepare()
        try:
            if self.route == "/webhook":
                self.webhook()
            elif self.route == "/authorize":
                self.authorize()
            elif self.route == "/issued":
                t = json.loads(self.body)
                with LOCK:
                    ISSUED[t["token"]] = {"user": t["user"], "groups": ["system:authenticated"],
                                          "exp": self.now + int(t["lifetime"])}
                self.reply(200, "{}")
            elif self.route.startswith("/sts"):
                self.sts_post()
            elif self.route == "/google/token":
                self.google_token(3599)
            elif re.match(r"^/google/lifetime/\d+/token$", self.route):
                self.google_token(int(self.route.split("/")[3]))
            elif re.match(r"^/entra/[^/]+/oauth2/v2\.0/token$", self.route):
                self.entra_token()
            else:
                self.reply(404, "{}")
        except Rejected as r:
            self.error(r)

    def error(self, r):
        if self.route.startswith("/sts"):
            body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                    f"<Type>Sender</Type><Code>{r.code}</Code><Message>{r.message}</Message>"
                    f"</Error><RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>")
            self.reply(r.status, body, "text/xml")
        elif self.route.startswith("/eks"):
            self.reply(r.status, json.dumps({"message": r.message}),
                       headers=[("x-amzn-ErrorType", r.code)])
        else:
            self.reply(r.status, json.dumps({"error": r.code, "error_description": r.message}))

    # ---------------------------------------------------------------- AWS
    def sts_get(self):
        url = f"http://{self.headers['Host']}{self.path_unskewed_full}"
        arn, _ = verify_presigned(url, self.headers.get("x-k8s-aws-id", ""), self.now,
                                  max_age=int(dict(parse_qsl(urlsplit(url).query)).get("X-Amz-Expires", "0")))
        account = arn.split(":")[4]
        self.reply(200, xml("GetCallerIdentity",
                            f"<Arn>{arn}</Arn><UserId>AIDA{secrets.token_hex(6).upper()}</UserId>"
                            f"<Account>{account}</Account>"), "text/xml")

    def sts_post(self):
        form = dict(parse_qsl(self.body.decode()))
        action = form.get("Action")
        if action == "AssumeRoleWithWebIdentity":
            w = AWS["web_identity"]
            if form.get("WebIdentityToken") != w["token"] or form.get("RoleArn") != w["role"]:
                raise Rejected(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider")
            arn = assumed_arn(form["RoleArn"], form.get("RoleSessionName", "s"))
            self.reply(200, xml(action, issue_temp(arn, self.now)), "text/xml")
            return
        if action != "AssumeRole":
            raise Rejected(400, "InvalidAction", f"Could not find operation {action}")
        caller, _ = verify_header_signed(self, "sts", self.body, self.now)
        role = AWS["roles"].get(form.get("RoleArn", ""))
        if role is None or caller not in role["trusted"]:
            raise Rejected(403, "AccessDenied",
                           f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {form.get('RoleArn')}")
        if role.get("external_id") and form.get("ExternalId") != role["external_id"]:
            raise Rejected(403, "AccessDenied",
                           f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {form.get('RoleArn')}")
        arn = assumed_arn(form["RoleArn"], form.get("RoleSessionName", "s"))
        self.reply(200, xml("AssumeRole", issue_temp(arn, self.now)), "text/xml")

    def eks(self):
        caller, region = verify_header_signed(self, "eks", self.body, self.now)
        if caller in AWS.get("no_describe", []):
            raise Rejected(403, "AccessDeniedException",
                           f"User: {caller} is not authorized to perform: eks:DescribeCluster")
        name = self.route[len("/eks/clusters"):].strip("/")
        here = region == AWS["region"]
        if not name:
            self.reply(200, json.dumps({"clusters": [AWS["cluster"]] if here else []}))
        elif here and name == AWS["cluster"]:
            self.reply(200, json.dumps({"cluster": {"name": name, "status": "ACTIVE",
                                                    "endpoint": AWS.get("endpoint", "")}}))
        else:
            raise Rejected(404, "ResourceNotFoundException", f"No cluster found for name: {name}.")

    def pod_identity(self):
        p = AWS["pod_identity"]
        if self.headers.get("Authorization") != p["token"]:
            raise Rejected(403, "AccessDeniedException", "the pod identity token is not valid")
        creds = issue_temp_json(assumed_arn(p["role"], "eks-pod-identity"), self.now)
        self.reply(200, json.dumps(creds))

    # ---------------------------------------------------------------- Google
    def metadata(self):
        if self.headers.get("Metadata-Flavor") != "Google":
            self.reply(403, "Missing Metadata-Flavor:Google header.", "text/html")
            return
        what = self.route.rsplit("/", 1)[1]
        email = GOOGLE["metadata_email"]
        if what == "email":
            self.reply(200, email, "application/text")
            return
        if what != "token":
            self.reply(404, "not found", "text/html")
            return
        query = dict(parse_qsl(urlsplit(self.path).query))
        scopes = set(query.get("scopes", "").split(","))
        want = {"https://www.googleapis.com/auth/cloud-platform",
                "https://www.googleapis.com/auth/userinfo.email"}
        if not want <= scopes:
            raise Rejected(400, "invalid_scope", f"missing scopes {sorted(want - scopes)}")
        token = "ya29.m." + secrets.token_urlsafe(40)
        with LOCK:
            ISSUED[token] = {"user": email, "groups": ["system:authenticated"], "exp": self.now + 3599}
        self.reply(200, json.dumps({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))

    def google_token(self, lifetime):
        form = dict(parse_qsl(self.body.decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise Rejected(400, "unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, verify=False)
            cert = GOOGLE["certs"][unverified["iss"]]
        except Exception:
            raise Rejected(400, "invalid_grant", "Invalid grant: account not found")
        token_uri = f"http://{self.headers['Host']}{self.path_unskewed_full}"
        try:
            # google-auth checks the RS256 signature, aud, iat and exp; its own clock is
            # moved to ours for /skew/ paths.
            offset = self.now - time.time()
            with LOCK:
                real = jwt._helpers.utcnow
                jwt._helpers.utcnow = lambda: real() + datetime.timedelta(seconds=offset)
                try:
                    claims = jwt.decode(assertion, certs=cert, audience=token_uri)
                finally:
                    jwt._helpers.utcnow = real
        except ValueError as e:
            text = str(e)
            if "Token used too early" in text or "Token expired" in text:
                raise Rejected(400, "invalid_grant",
                               "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                               "reasonable timeframe. Check your iat and exp values in the JWT claim.")
            if "audience" in text.lower():
                raise Rejected(400, "invalid_grant", "Invalid JWT: Failed audience check.")
            raise Rejected(400, "invalid_grant", "Invalid JWT Signature.")
        scopes = set(claims.get("scope", "").split())
        want = {"https://www.googleapis.com/auth/cloud-platform",
                "https://www.googleapis.com/auth/userinfo.email"}
        if not want <= scopes:
            raise Rejected(400, "invalid_scope", f"missing scopes {sorted(want - scopes)}")
        token = "ya29." + secrets.token_urlsafe(40)
        with LOCK:
            ISSUED[token] = {"user": claims["iss"], "groups": ["system:authenticated"],
                             "exp": self.now + lifetime}
        self.reply(200, json.dumps({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))

    # ---------------------------------------------------------------- Entra
    def entra_token(self):
        tenant = self.route.split("/")[2]
        form = dict(parse_qsl(self.body.decode()))
        if tenant != AZURE["tenant"]:
            raise Rejected(400, "invalid_request",
                           f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                           "correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            raise Rejected(400, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
        client = AZURE["clients"].get(form.get("client_id", ""))
        if client is None:
            raise Rejected(400, "unauthorized_client",
                           f"AADSTS700016: Application with identifier '{form.get('client_id')}' was "
                           f"not found in the directory '{tenant}'.")
        if form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            fed = client.get("federated")
            try:
                claims = jwt.decode(form.get("client_assertion", ""), certs=AZURE["federated"]["cert"],
                                    audience="api://AzureADTokenExchange")
            except (ValueError, KeyError) as e:
                raise Rejected(400, "invalid_client", f"AADSTS700024: Client assertion is not valid: {e}")
            if not fed or claims.get("iss") != fed["issuer"] or claims.get("sub") != fed["subject"]:
                raise Rejected(400, "invalid_request",
                               "AADSTS70021: No matching federated identity record found for presented "
                               f"assertion. Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
                               f"'{claims.get('sub')}'.")
        elif form.get("client_secret") != client["secret"]:
            raise Rejected(401, "invalid_client",
                           "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                           "sent in the request is the client secret value, not the client secret ID.")
        elif client.get("secret_expired"):
            raise Rejected(401, "invalid_client",
                           f"AADSTS7000222: The provided client secret keys for app '{form.get('client_id')}' "
                           "are expired. Visit the Azure portal to create new keys for your app: "
                           "https://aka.ms/NewClientSecret, or consider using certificate credentials for "
                           "added security: https://aka.ms/certCreds.")
        if form.get("scope") != "6dae42f8-4368-4678-94ff-3960e28e3630/.default":
            raise Rejected(400, "invalid_scope", "AADSTS70011: The provided value for scope is not valid.")
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(40)
        with LOCK:
            ISSUED[token] = {"user": client["oid"], "groups": ["system:authenticated"],
                             "exp": self.now + 3599}
        self.reply(200, json.dumps({"token_type": "Bearer", "expires_in": 3599,
                                    "ext_expires_in": 3599, "access_token": token}))

    # ---------------------------------------------------------------- webhook
    def authorize(self):
        """The API server's authorization webhook (after Node and RBAC): allows
        what `authz_allow` names, has no opinion on anything else. A webhook
        in the chain makes SelfSubjectRulesReviews `incomplete`, as on
        clusters with a cloud's IAM authorizer."""
        review = json.loads(self.body)
        status = {"allowed": False}
        if authorized(review.get("spec", {})):
            status = {"allowed": True, "reason": "allowed by the tether-test authorization webhook"}
        self.reply(200, json.dumps({"apiVersion": review.get("apiVersion"),
                                    "kind": "SubjectAccessReview", "status": status}))

    def webhook(self):
        review = json.loads(self.body)
        token = review.get("spec", {}).get("token", "")
        status = {"authenticated": False}
        try:
            if token.startswith(TOKEN_PREFIX):
                url = token_url(token[len(TOKEN_PREFIX):])
                host = urlsplit(url).netloc
                if host not in (f"sts.{r}.amazonaws.com" for r in [AWS["region"]]) and host != self.headers["Host"]:
                    raise Rejected(401, "host", f"unexpected STS host {host}")
                arn, _ = verify_presigned(url, AWS["cluster"], self.now, max_age=15 * 60)
                user = AWS["mapped"].get(mapping_arn(arn))
                if user:
                    status = {"authenticated": True, "user": {"username": user, "groups": ["system:authenticated"], "uid": arn}}
                else:
                    status["error"] = f"ARN is not mapped: {arn}"
            else:
                with LOCK:
                    t = ISSUED.get(token)
                if t and t["exp"] > self.now and t["user"] not in CONFIG.get("denied", []):
                    status = {"authenticated": True, "user": {"username": t["user"], "groups": t["groups"]}}
        except Rejected as r:
            status["error"] = r.message
        self.reply(200, json.dumps({"apiVersion": review.get("apiVersion"), "kind": "TokenReview",
                                    "status": status}))


# The query parameters aws-iam-authenticator lets through (lower case).
TOKEN_PARAMS = {"action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
                "x-amz-expires", "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders"}


def token_url(raw):
    """The presigned URL of an EKS token, held to the form aws-iam-authenticator
    accepts: unpadded base64url (Go's RawURLEncoding), path `/` (or this
    stand-in's `/sts`), known parameters only, each once, X-Amz-Expires 0-900."""
    if len(raw) > 4096 or not re.fullmatch(r"[A-Za-z0-9_-]*", raw) or len(raw) % 4 == 1:
        raise Rejected(401, "format", "the token is not unpadded base64url")
    url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    u = urlsplit(url)
    if u.path != "/" and not u.path.rstrip("/").endswith("/sts"):
        raise Rejected(401, "format", "unexpected path in pre-signed URL")
    seen = set()
    for k, _ in parse_qsl(u.query, keep_blank_values=True):
        if k.lower() not in TOKEN_PARAMS:
            raise Rejected(401, "format", f"non-whitelisted query parameter {k!r}")
        if k.lower() in seen:
            raise Rejected(401, "format", "query parameter with multiple values not supported")
        seen.add(k.lower())
    expires = dict(parse_qsl(u.query)).get("X-Amz-Expires", "")
    if not expires.isdigit() or int(expires) > 900:
        raise Rejected(401, "format", f"invalid X-Amz-Expires parameter in pre-signed URL: {expires}")
    return url


def authorized(spec):
    """The allowance of `authz_allow` that covers a SubjectAccessReview spec."""
    attrs = spec.get("resourceAttributes") or {}
    for a in CONFIG.get("authz_allow", []):
        if (spec.get("user") == a["user"] and attrs.get("verb") == a["verb"]
                and attrs.get("group", "") == a.get("group", "")
                and attrs.get("resource") == a["resource"] and not attrs.get("subresource")):
            return a
    return None


def assumed_arn(role_arn, session):
    account = role_arn.split(":")[4]
    name = role_arn.split("/")[-1]
    return f"arn:aws:sts::{account}:assumed-role/{name}/{session}"


def mapping_arn(arn):
    """aws-auth maps roles by their role ARN, not the session's."""
    m = re.match(r"arn:aws:sts::(\d+):assumed-role/([^/]+)/", arn)
    return f"arn:aws:iam::{m.group(1)}:role/{m.group(2)}" if m else arn


def mint_federated_token():
    """The projected service-account token of a pod with AKS workload identity."""
    f = AZURE.get("federated")
    if not f:
        return
    from google.auth import crypt
    signer = crypt.RSASigner.from_string(f["key"], key_id="sa-1")
    now = int(time.time())
    token = jwt.encode(signer, {"iss": f["issuer"], "sub": f["subject"], "aud": "api://AzureADTokenExchange",
                                "iat": now, "nbf": now, "exp": now + 24 * 3600})
    with open(f["token_file"], "wb") as out:
        out.write(token)


def main():
    mint_federated_token()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Exit when whoever started us goes away.
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
