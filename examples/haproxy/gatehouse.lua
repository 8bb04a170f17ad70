-- Gatehouse forward auth for HAProxy (2.6 or later: core.httpclient), loaded by haproxy.cfg next
-- to this file. Two actions:
--   lua.gatehouse_strip  removes every client-sent spelling of the identity headers and the
--                        X-Forwarded-* family (the gateway's policy: gateway/src/request-headers.ts)
--   lua.gatehouse_auth   asks the session-service's /internal/validate about the request, sets the
--                        identity headers it vouched for, removes the session cookie (and an
--                        access token, `Authorization: Bearer gatehouse_…`) from what the app
--                        receives, and leaves its verdict in txn.gatehouse_verdict (ok, login,
--                        unauthenticated, invalid_token, throttled, unavailable) for haproxy.cfg
--                        to act on. Anything but a 2xx from validate is not "ok": haproxy.cfg then
--                        answers, never the app. An access token goes to validate in
--                        X-Gatehouse-Authorization (the request's own Authorization is the
--                        internal token).
--
-- Read from the environment when HAProxy starts (it refuses to start when one is missing):
--   SESSION_SERVICE_URL   the session-service as http://host:port
--   IDENTITY_AUDIENCE     the `aud` of the signed identity (X-Auth-Request-Jwt) the app receives
--   INTERNAL_TOKEN        the session-service's INTERNAL_TOKEN, sent on the validate request alone
--   SESSION_COOKIE_NAME   the session cookie's name ("gatehouse" when unset)

local function required(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error("gatehouse.lua: " .. name .. " is not set")
  end
  return value
end

local SESSION_SERVICE_URL = required("SESSION_SERVICE_URL")
local IDENTITY_AUDIENCE = required("IDENTITY_AUDIENCE")
local INTERNAL_TOKEN = required("INTERNAL_TOKEN")
local COOKIE_NAME = os.getenv("SESSION_COOKIE_NAME") or "gatehouse"
local VALIDATE_URL = SESSION_SERVICE_URL .. "/internal/validate?aud=" .. IDENTITY_AUDIENCE
-- The gateway's deadline (VALIDATE_TIMEOUT_MS): slow is unavailable.
local VALIDATE_TIMEOUT_MS = 1500

-- The identity headers (common/src/identity.ts): only validate's answer sets them.
local IDENTITY = {
  ["x-auth-request-user"] = true,
  ["x-auth-request-groups"] = true,
  ["x-auth-request-email"] = true,
  ["x-auth-request-expires"] = true,
  ["x-auth-request-jwt"] = true,
  ["x-auth-request-access-token"] = true,
  ["x-forwarded-user"] = true,
  ["x-forwarded-groups"] = true,
  ["x-forwarded-email"] = true,
  ["x-forwarded-preferred-username"] = true,
  ["remote-user"] = true,
  ["remote-groups"] = true,
  ["remote-email"] = true,
  ["remote-name"] = true,
  ["x-auth-request-amr"] = true,
  ["x-auth-request-acr"] = true,
  ["x-auth-request-auth-time"] = true,
}
-- What validate vouches for and the app receives: the identity, and how the session signed in.
local PASSED = {
  "x-auth-request-user",
  "x-auth-request-groups",
  "x-auth-request-email",
  "x-auth-request-expires",
  "x-auth-request-jwt",
  "x-auth-request-amr",
  "x-auth-request-acr",
  "x-auth-request-auth-time",
}

-- Lowercase with "_" read as "-": a CGI-style app reads X_Auth_Request_User as X-Auth-Request-User.
local function canonical(name)
  return (name:lower():gsub("_", "-"))
end

local function untrusted(name)
  local c = canonical(name)
  return IDENTITY[c] or c:find("^x%-auth%-request%-") ~= nil or c:find("^x%-forwarded%-") ~= nil
    or c:find("^remote%-") ~= nil or c:find("^x%-gatehouse%-") ~= nil
end

-- A header's values as a Lua list. HAProxy's request header tables count from 0; the
-- httpclient's answer may count from 1: read either.
local function values(list)
  local out = {}
  if list == nil then
    return out
  end
  local i = list[0] ~= nil and 0 or 1
  while list[i] ~= nil do
    out[#out + 1] = list[i]
    i = i + 1
  end
  return out
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The Cookie header without the session cookie (any of its three names), the other pairs kept.
local function without_session_cookie(cookie)
  local kept = {}
  for pair in (cookie .. ";"):gmatch("([^;]*);") do
    local name = trim(pair:match("^[^=]*"))
    if pair:find("%S") and name ~= COOKIE_NAME and name ~= "__Host-" .. COOKIE_NAME
      and name ~= "__Secure-" .. COOKIE_NAME then
      kept[#kept + 1] = trim(pair)
    end
  end
  return table.concat(kept, "; ")
end

-- Authorization carrying one of our access tokens (validate reads it; the app never gets it).
local function gatehouse_bearer(value)
  return value ~= nil and value:lower():find("^%s*bearer%s+gatehouse_") ~= nil
end

core.register_action("gatehouse_strip", { "http-req" }, function(txn)
  for name, _ in pairs(txn.http:req_get_headers()) do
    if untrusted(name) then
      txn.http:req_del_header(name)
    end
  end
end, 0)

core.register_action("gatehouse_auth", { "http-req" }, function(txn)
  txn:set_var("txn.gatehouse_verdict", "unavailable")
  local request = txn.http:req_get_headers()
  local cookie = table.concat(values(request["cookie"]), "; ")
  local headers = {
    ["authorization"] = { "Bearer " .. INTERNAL_TOKEN },
    -- validate sends a browser (Accept has text/html) to the login page, back to this URI
    ["x-forwarded-uri"] = { txn.sf:pathq() },
    ["x-forwarded-method"] = { txn.sf:method() },
    ["x-forwarded-proto"] = { "https" },
    ["x-forwarded-for"] = { txn.sf:src() },
  }
  local accept = values(request["accept"])
  if #accept > 0 then
    headers["accept"] = { table.concat(accept, ", ") }
  end
  if cookie ~= "" then
    headers["cookie"] = { cookie }
  end
  local host = values(request["host"])[1]
  if host then
    headers["x-forwarded-host"] = { host }
  end
  local authorization = values(request["authorization"])[1]
  local bearer = gatehouse_bearer(authorization)
  if bearer then
    headers["x-gatehouse-authorization"] = { authorization }
  end

  local client = core.httpclient()
  local ok, res = pcall(client.get, client, {
    url = VALIDATE_URL,
    headers = headers,
    timeout = VALIDATE_TIMEOUT_MS,
  })
  if not ok or type(res) ~= "table" then
    txn:Warning("gatehouse: validate failed: " .. tostring(res))
    return
  end
  local status = tonumber(res.status) or 0
  local answer = res.headers or {}
  if status >= 200 and status < 300 then
    for _, name in ipairs(PASSED) do
      local value = values(answer[name])[1]
      if value ~= nil then
        txn.http:req_set_header(name, value)
      end
    end
    if bearer then
      txn.http:req_del_header("authorization")
    end
    local rest = without_session_cookie(cookie)
    if rest == "" then
      txn.http:req_del_header("cookie")
    else
      txn.http:req_set_header("cookie", rest)
    end
    txn:set_var("txn.gatehouse_verdict", "ok")
  elseif status == 302 then
    local location = values(answer["location"])[1] or ""
    -- only validate's own login redirect, never anywhere else
    if location:sub(1, 15) == "/auth/login?rd=" then
      txn:set_var("txn.gatehouse_location", location)
      txn:set_var("txn.gatehouse_verdict", "login")
    end
  elseif status == 401 and bearer then
    txn:set_var("txn.gatehouse_verdict", "invalid_token")
  elseif status == 401 then
    txn:set_var("txn.gatehouse_verdict", "unauthenticated")
  elseif status == 429 and bearer then
    local retry = values(answer["retry-after"])[1] or ""
    txn:set_var("txn.gatehouse_retry_after", retry:match("^%d+$") and retry or "60")
    txn:set_var("txn.gatehouse_verdict", "throttled")
  else
    txn:Warning("gatehouse: validate answered " .. status)
  end
end, 0)
