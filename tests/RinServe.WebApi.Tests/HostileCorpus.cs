using System.Text;

namespace RinServe.WebApi.Tests;

/// <summary>
/// One hostile request. <see cref="Transport"/>: it breaks HTTP framing or a Kestrel limit, so Kestrel itself may
/// answer (a bodiless 400, 408, 413, 414, 431 or 505) or close before the app sees it. <see cref="Parameter"/>:
/// the name a 400 from the app must give, when the case changes exactly one named input.
/// </summary>
public sealed record HostileCase(
    string Category,
    string Label,
    IReadOnlyList<Segment> Segments,
    bool Transport = false,
    string? Parameter = null,
    bool HalfClose = false,
    bool Slow = false,
    bool Head = false);

/// <summary>What the generator needs to know about the running service.</summary>
public sealed record CorpusContext(string Host, string ApiKey, string SucceededJob, string OtherJob);

/// <summary>
/// The hostile-input corpus: mutations of valid requests to every endpoint, generated deterministically from
/// a seed. Requests that are valid by chance ask for <c>Prefer: respond-async</c> (the test cancels them) or
/// for one sampler step, so they stay cheap.
/// </summary>
public sealed class HostileCorpus(int seed, CorpusContext context)
{
    private readonly Random _random = new(seed);
    private readonly List<HostileCase> _cases = [];

    private const string Base = "class=1&steps=2";
    private const string BaseJson = "{\"class\":1,\"steps\":2}";
    private const string UnknownId = "AAAAAAAAAAAAAAAAAAAAAA";

    /// <summary>Query values as they appear on the wire (already percent-encoded where needed).</summary>
    private static readonly string[] QueryValues =
    [
        "", "abc", "%20", "+", "%2B1", "1.5", "1e3", "0x10", "-0", "-1", "0", "1", "2", "3", "4", "5", "9", "10", "16", "64",
        "999", "1000", "1001", "20000", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "-9223372036854775809", "99999999999999999999999999999", "1e400", "-1e-400", "NaN", "Infinity",
        "-Infinity", "%E2%88%9E", "%D9%A3", "%EF%BC%91", "1%2C000", "1_000", "%201%20", "1%09", "%00", "1%00", "%0D%0ASet-Cookie:%20x=1",
        "%27%20OR%20%271%27=%271", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%24%7Bjndi:ldap:%2F%2Fx%2Fa%7D", "..%2F..%2Fetc%2Fpasswd",
        "%7B%7B7*7%7D%7D", "%F0%9F%92%A9", "%E2%80%AE1", "%E2%80%8B1", "%EF%BB%BF1", "%C0%AF", "%C0%B1", "%ED%A0%80", "%FF", "%FE%FF",
        "%", "%zz", "%2", "%%31", "%u0031", "%7F", "%C2%A0", "null", "undefined", "true", "[]", "%7B%7D", "%5B1%5D",
        new string('a', 1000), new string('9', 400), string.Concat(Enumerable.Repeat("%F0%9F%92%A9", 200)),
    ];

    private static readonly Dictionary<string, string[]> ParameterValues = new()
    {
        ["class"] = ["0", "9", "-0", "Sneaker", "sneaker", "SNEAKER", "T-shirt%2Ftop", "Ankle%20boot", "Ankle+boot", "7%00", "%E2%80%8B7"],
        ["res"] = ["16", "016", "+16", "32", "0", "-16", "16.0", "16%00"],
        ["model"] = ["tiny", "TINY", "tiny%00", "..%2Ftiny", "tiny.onnx", "%2A", "%25"],
        ["steps"] = ["1", "1000", "1001", "01", "+1", "1.0", "2%00", "%D9%A2"],
        ["sampler"] = ["ddim", "DDPM", "ddpm-small", "ddpm_small", "euler", "ddim%00"],
        ["schedule"] =
        [
            "cosine", "LINEAR", "sigmoid@-3,3,0.9", "cosine@0,1,1", "cosine@", "sigmoid@a,b,c", "sigmoid@1e308,-1e308,1", "cosine@0,1,0",
            "cosine@0,256.5,0.25", "sigmoid@-3,3,1e-308", "sigmoid@-3,3,-1", "cosine@NaN,1,1", "linear@1,2,3", "sigmoid@-3,3,0.9,1",
            "sigmoid@%2C%2C", "cosine@0,1,1e-45", "sigmoid@-1e39,3,1", "cosine@-0,1,1",
        ],
        ["seed"] = ["0", "9223372036854775807", "-0", "00000000000000000000001", "1e18"],
        ["guidance"] = ["0", "0.0", "-0.0", "1", "20", "20.000001", "1e-45", "3.4028235e38", "1e39", "0x1", "0%2C5"],
        ["n"] = ["1", "4", "5", "0", "04", "-4"],
        ["format"] = ["png", "PNG", "jpeg", "jpg", "webp", "gif", "png%00", "image%2Fpng"],
    };

    /// <summary>JSON values; <c>true</c> in the second item: the value breaks the document, so the problem names the body.</summary>
    private static readonly (string Json, bool BreaksDocument)[] JsonValues =
    [
        ("true", false), ("false", false), ("null", false), ("[]", false), ("{}", false), ("[1]", false), ("{\"a\":1}", false),
        ("\"\"", false), ("\"abc\"", false), ("\"1\"", false), ("\" 1 \"", false), ("1.5", false), ("-0", false), ("0", false),
        ("1", false), ("2", false), ("4", false), ("5", false), ("10", false), ("1000", false), ("1001", false), ("-1", false),
        ("1e400", false), ("-1e400", false), ("1E+2", false), ("1e-400", false), ("123456789012345678901234567890", false),
        ("9223372036854775807", false), ("9223372036854775808", false), ("0.0000001", false), ("\"\\u0000\"", false),
        ("\"1\\u0000\"", false), ("\"\\ud800\"", false), ("\"\\udc00\\ud800\"", false), ("\"\\ud83d\\udca9\"", false),
        ("\"\\uffff\"", false), ("\"\\ufeff1\"", false), ("\"\\\\\"", false), ("\"\\\"\"", false), ("\"\\u202e1\"", false),
        ("\"<script>alert(1)</script>\"", false), ("\"' OR '1'='1\"", false), ("\"${jndi:ldap://x/a}\"", false),
        ("\"../../etc/passwd\"", false), ("\"" + new string('x', 1000) + "\"", false), ("[[[[[[[1]]]]]]]", false),
        ("[[[[[[[[1]]]]]]]]", true), (new string('[', 100) + new string(']', 100), true), ("01", true), ("+1", true),
        (".5", true), ("1.", true), ("NaN", true), ("Infinity", true), ("'single'", true), ("undefined", true), ("0x10", true),
        ("\"unterminated", true), ("\"tab\there\"", true), ("\"\\x41\"", true), ("\"\\u12\"", true), ("", true),
    ];

    public IReadOnlyList<HostileCase> Generate()
    {
        QueryMutations();
        ParameterNames();
        JsonFieldMutations();
        JsonDocuments();
        JsonByteFuzz();
        Charsets();
        ContentTypes();
        Headers();
        HeaderSyntax();
        Ids();
        MethodsAndRoutes();
        RequestLines();
        Chunked();
        Huge();
        Slow();
        RandomCombinations();
        return _cases;
    }

    // ---------------------------------------------------------------- query strings

    private void QueryMutations()
    {
        foreach (var (name, specific) in ParameterValues)
        {
            var values = specific.Concat(Sample(QueryValues, 30)).Distinct();
            foreach (var value in values)
            {
                var query = name == "class" ? $"class={value}&steps=2" : $"{Base}&{name}={value}";
                if (name == "steps")
                {
                    query = $"class=1&steps={value}";
                }
                Add("query", $"{name}={value}", Post("/generate?" + query), parameter: name);
            }
        }
    }

    private void ParameterNames()
    {
        string[] names =
        [
            "colour", "CLASS=1&x", "Steps", "cla%73s", "class%00", "%00", "", "class[]", "class.x", "__proto__", "constructor",
            "%EF%BD%83%EF%BD%8C%EF%BD%81%EF%BD%93%EF%BD%93", "%C5%BFteps", "st%C4%B0ps", new string('n', 5000), "%", "%zz",
            "class%20", "%20class", "class;steps", "a=b=c",
        ];
        foreach (var name in names)
        {
            Add("query-name", $"{name}=2", Post($"/generate?{Base}&{name}=2"));
        }
        Add("query-name", "repeated class", Post("/generate?class=1&class=1&steps=2"), parameter: "class");
        Add("query-name", "repeated steps, different case", Post("/generate?class=1&steps=2&STEPS=2"), parameter: "steps");
        Add("query-name", "class without =", Post("/generate?class&steps=2"), parameter: "class");
        Add("query-name", "only separators", Post("/generate?&&&;;;==="));
        Add("query-name", "question marks", Post("/generate??class=1&steps=2?"));
        Add("query-name", "fragment", Post("/generate?class=1&steps=2#frag"), transport: true);
        Add("query-name", "1000 repeated names", Post("/generate?" + string.Join("&", Enumerable.Repeat("class=1", 1000))), parameter: "class");
        Add("query-name", "900 distinct unknown names", Post("/generate?" + string.Join("&", Enumerable.Range(0, 900).Select(i => $"p{i}=1"))));
        Add("query-name", "empty query", Post("/generate?"), parameter: "class");
        Add("query-name", "no query", Post("/generate"), parameter: "class");
    }

    // ---------------------------------------------------------------- JSON bodies

    private void JsonFieldMutations()
    {
        foreach (var name in ParameterValues.Keys)
        {
            foreach (var (json, breaks) in Sample(JsonValues, 24))
            {
                var body = name switch
                {
                    "class" => $"{{\"class\":{json},\"steps\":2}}",
                    "steps" => $"{{\"class\":1,\"steps\":{json}}}",
                    _ => $"{{\"class\":1,\"steps\":2,\"{name}\":{json}}}",
                };
                Add("json-field", $"{name}: {Shorten(json)}", PostJson(body), parameter: breaks ? "body" : name);
            }
        }
    }

    private void JsonDocuments()
    {
        (string Label, string Body, string? Parameter)[] documents =
        [
            ("number", "1", "body"), ("string", "\"class\"", "body"), ("null", "null", "body"), ("array", "[{\"class\":1}]", "body"),
            ("true", "true", "body"), ("whitespace", "   \r\n\t  ", "body"), ("empty object", "{}", "class"),
            ("duplicate key", "{\"class\":1,\"class\":2,\"steps\":2}", "class"),
            ("duplicate key, other case", "{\"class\":1,\"CLASS\":1,\"steps\":2}", "class"),
            ("upper-case keys", "{\"CLASS\":1,\"STEPS\":2}", null), ("unknown key", "{\"class\":1,\"steps\":2,\"colour\":\"red\"}", "colour"),
            ("empty key", "{\"\":1,\"class\":1}", null), ("__proto__", "{\"__proto__\":{\"class\":1}}", "__proto__"),
            ("lone surrogate key", "{\"\\ud800\":1}", "body"), ("surrogate pair key", "{\"\\ud83d\\udca9\":1}", null),
            ("NUL key", "{\"cl\\u0000ass\":1}", null), ("escaped key", "{\"\\u0063lass\":1,\"steps\":2}", null),
            ("trailing comma", "{\"class\":1,\"steps\":2,}", "body"), ("comment", "{\"class\":1 /* c */,\"steps\":2}", "body"),
            ("line comment", "{\"class\":1,\"steps\":2}// c", "body"), ("single quotes", "{'class':1}", "body"),
            ("unquoted key", "{class:1}", "body"), ("trailing garbage", "{\"class\":1,\"steps\":2}garbage", "body"),
            ("two documents", "{\"class\":1,\"steps\":2}{\"class\":1}", "body"), ("truncated", "{\"class\":1,\"steps\":", "body"),
            ("only open brace", "{", "body"), ("only close brace", "}", "body"), ("NUL byte", "{\"class\":1\u0000}", "body"),
            ("nested 7 deep", "{\"a\":" + new string('[', 6) + "1" + new string(']', 6) + "}", null),
            ("nested 9 deep", "{\"class\":" + new string('{', 8) + new string('}', 8) + "}", "body"),
            ("nested 10000 deep", new string('[', 10000) + new string(']', 10000), "body"),
            ("many keys", "{" + string.Join(",", Enumerable.Range(0, 3000).Select(i => $"\"k{i}\":{i}")) + "}", null),
            ("long number", "{\"class\":" + new string('1', 50_000) + "}", "class"),
            ("long string", "{\"class\":\"" + new string('x', 60_000) + "\"}", "class"),
            ("number with exponent", "{\"class\":1e0,\"steps\":2e0}", null), ("negative zero class", "{\"class\":-0,\"steps\":2}", null),
            ("all fields", "{\"class\":\"1\",\"res\":\"16\",\"model\":\"tiny\",\"steps\":\"2\",\"sampler\":\"ddim\",\"schedule\":\"cosine\",\"seed\":\"1\",\"guidance\":\"0\",\"n\":\"1\",\"format\":\"png\"}", null),
            ("all null", "{\"class\":null,\"res\":null,\"model\":null,\"steps\":null,\"sampler\":null,\"schedule\":null,\"seed\":null,\"guidance\":null,\"n\":null,\"format\":null}", "class"),
        ];
        foreach (var (label, body, parameter) in documents)
        {
            Add("json-document", label, PostJson(body), parameter: parameter);
        }
        var bom = new byte[] { 0xEF, 0xBB, 0xBF };
        Add("json-document", "UTF-8 BOM", PostBytes([.. bom, .. Encoding.UTF8.GetBytes(BaseJson)], "application/json"));
        Add("json-document", "two UTF-8 BOMs", PostBytes([.. bom, .. bom, .. Encoding.UTF8.GetBytes(BaseJson)], "application/json"));
        Add("json-document", "UTF-16 BOM, no charset", PostBytes(Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes(BaseJson)).ToArray(), "application/json"));
        Add("json-document", "query and body both", Post("/generate?class=1", body: Encoding.UTF8.GetBytes(BaseJson), contentType: "application/json"), parameter: "class");
        Add("json-document", "zero-length body with Content-Type", PostBytes([], "application/json"), parameter: "class");
        byte[][] invalidUtf8 = [[0xFF], [0xC0, 0xAF], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xE2, 0x82]];
        foreach (var bad in invalidUtf8)
        {
            var hex = Convert.ToHexString(bad);
            Add("json-utf8", $"value bytes {hex}", PostBytes([.. "{\"class\":\""u8.ToArray(), .. bad, .. "\",\"steps\":2}"u8.ToArray()], "application/json"), parameter: "class");
            Add("json-utf8", $"key bytes {hex}", PostBytes([.. "{\""u8.ToArray(), .. bad, .. "\":1}"u8.ToArray()], "application/json"), parameter: "body");
            Add("json-utf8", $"structural bytes {hex}", PostBytes([.. "{\"class\":1,"u8.ToArray(), .. bad, .. "}"u8.ToArray()], "application/json"), parameter: "body");
        }
    }

    private void JsonByteFuzz()
    {
        var valid = Encoding.UTF8.GetBytes("{\"class\":1,\"steps\":2,\"seed\":7,\"sampler\":\"ddim\",\"format\":\"png\"}");
        byte[] interesting = [0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x7F, 0x80, 0xC0, 0xED, 0xFF, 0x0A, 0x30];
        for (var i = 0; i < 120; i++)
        {
            var bytes = valid.ToList();
            var edits = _random.Next(1, 4);
            var steps = new List<string>();
            for (var e = 0; e < edits && bytes.Count > 1; e++)
            {
                var at = _random.Next(bytes.Count);
                var b = _random.Next(2) == 0 ? interesting[_random.Next(interesting.Length)] : (byte)_random.Next(256);
                switch (_random.Next(4))
                {
                    case 0: bytes[at] = b; steps.Add($"set {at}={b:X2}"); break;
                    case 1: bytes.Insert(at, b); steps.Add($"insert {at}={b:X2}"); break;
                    case 2: bytes.RemoveAt(at); steps.Add($"delete {at}"); break;
                    default:
                        var length = Math.Min(_random.Next(1, 12), bytes.Count - at);
                        bytes.InsertRange(at, bytes.GetRange(at, length));
                        steps.Add($"repeat {at}+{length}");
                        break;
                }
            }
            Add("json-fuzz", string.Join(", ", steps), PostBytes([.. bytes], "application/json"));
        }
    }

    private void Charsets()
    {
        (string Charset, Encoding? Encoding)[] charsets =
        [
            ("utf-8", Encoding.UTF8), ("UTF8", Encoding.UTF8), ("\"utf-8\"", Encoding.UTF8), ("utf-16", Encoding.Unicode),
            ("utf-16le", Encoding.Unicode), ("utf-16BE", Encoding.BigEndianUnicode), ("utf-32", Encoding.UTF32),
            ("iso-8859-1", Encoding.Latin1), ("us-ascii", Encoding.ASCII), ("klingon", null), ("", null), ("\"\"", null),
            ("utf-7", null), ("ebcdic-cp-us", null), ("x-user-defined", null), ("unicode", Encoding.Unicode), ("utf-8;q=1", null),
            ("gb18030", null), ("shift_jis", null), ("../../etc", null),
        ];
        foreach (var (charset, encoding) in charsets)
        {
            var contentType = $"application/json; charset={charset}";
            Add("charset", $"{charset}: UTF-8 body", PostBytes(Encoding.UTF8.GetBytes(BaseJson), contentType));
            if (encoding is not null && encoding != Encoding.UTF8)
            {
                Add("charset", $"{charset}: body in that charset", PostBytes(encoding.GetBytes(BaseJson), contentType));
                Add("charset", $"{charset}: with BOM", PostBytes([.. encoding.GetPreamble(), .. encoding.GetBytes(BaseJson)], contentType));
            }
        }
        Add("charset", "utf-16: odd byte count", PostBytes([0x7B, 0x00, 0x7D], "application/json; charset=utf-16"), parameter: "body");
        Add("charset", "utf-16: lone surrogate", PostBytes([0x7B, 0x00, 0x22, 0x00, 0x00, 0xD8, 0x22, 0x00, 0x3A, 0x00, 0x31, 0x00, 0x7D, 0x00], "application/json; charset=utf-16"), parameter: "body");
        Add("charset", "utf-32: bytes out of range", PostBytes([0xFF, 0xFF, 0xFF, 0xFF, 0x7B, 0, 0, 0], "application/json; charset=utf-32"), parameter: "body");
        Add("charset", "us-ascii: high bytes", PostBytes([.. "{\"class\":\""u8.ToArray(), 0xE9, .. "\"}"u8.ToArray()], "application/json; charset=us-ascii"), parameter: "body");
        Add("charset", "two charsets", PostBytes(Encoding.UTF8.GetBytes(BaseJson), "application/json; charset=utf-8; charset=utf-16"));
    }

    private void ContentTypes()
    {
        string[] types =
        [
            "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "APPLICATION/JSON",
            "application/vnd.api+json", "application/problem+json", "application/json, text/plain", "/", "application/", ";", "json",
            "application/json; boundary=x", "application/json;;;", "application/json; charset", "application/json; =utf-8",
            "application/json " + new string(' ', 100) + ";x=y", "application/json; x=" + new string('y', 2000), "*/*", "application/*",
            "text/json", "application/jsonp", "application/json\t", "image/png",
        ];
        foreach (var type in types)
        {
            Add("content-type", type.Length > 40 ? type[..40] + "..." : type, PostBytes(Encoding.UTF8.GetBytes(BaseJson), type));
        }
        Add("content-type", "no Content-Type with a body", Post("/generate", body: Encoding.UTF8.GetBytes(BaseJson)), parameter: "body");
        Add("content-type", "two Content-Types", Post("/generate", ["Content-Type: application/json", "Content-Type: text/plain"], Encoding.UTF8.GetBytes(BaseJson)));
        Add("content-type", "form body", PostBytes("class=1&steps=2"u8.ToArray(), "application/x-www-form-urlencoded"), parameter: "body");
    }

    // ---------------------------------------------------------------- headers

    private void Headers()
    {
        var valid = $"/generate?{Base}";
        var quick = "/generate?class=1&steps=1";
        string[] accepts =
        [
            "", "*/*", "application/json", "image/webp", "application/json;q=0", "text/html", "image/*;q=0.5, */*;q=0",
            "application/json" + string.Concat(Enumerable.Repeat(";a=b", 500)), "application/problem+json", "nonsense",
        ];
        foreach (var accept in accepts)
        {
            Add("accept", Shorten(accept), Post(quick, [$"Accept: {accept}"], async: false));
            Add("accept", "on a job: " + Shorten(accept), Get($"/jobs/{context.SucceededJob}", [$"Accept: {accept}"]));
        }
        string[] prefers =
        [
            "", "wait=0", "wait=1", "wait=-1", "wait=abc", "wait=", "wait=1e3", "wait=99999999999999999999", "wait=120", "wait=121",
            "respond-async, wait=5", "respond-async;x=y", "handling=strict", ",,,", "wait=0x1", "wait=+1", "wait= 1", "wait=1;",
            "return=minimal", "RESPOND-ASYNC", "wait=1, wait=abc", "wait=\"1\"", "wait=%D9%A3", new string('w', 4000),
        ];
        foreach (var prefer in prefers)
        {
            Add("prefer", Shorten(prefer), Post(quick, [$"Prefer: {prefer}"], async: false), parameter: "Prefer");
        }
        Add("prefer", "two Prefer headers", Post(quick, ["Prefer: wait=1", "Prefer: wait=x"], async: false), parameter: "Prefer");
        string[] keys =
        [
            "", " ", "a", new string('k', 255), new string('k', 256), "\t", "key with space", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "%00", "\"quoted\"", "k\u007F", new string('k', 10_000),
        ];
        foreach (var key in keys)
        {
            Add("idempotency-key", Shorten(key), Post(valid, [$"Idempotency-Key: {key}"]), parameter: "Idempotency-Key");
        }
        Add("idempotency-key", "two keys", Post(valid, ["Idempotency-Key: a1", "Idempotency-Key: b2"]), parameter: "Idempotency-Key");
        // The same key with other parameters: the second of the pair (whichever lands second) is 409.
        for (var i = 0; i < 5; i++)
        {
            Add("idempotency-key", $"reuse {i}: steps=2", Post(valid, [$"Idempotency-Key: corpus-reuse-{seed}-{i}"]), parameter: "Idempotency-Key");
            Add("idempotency-key", $"reuse {i}: steps=3", Post("/generate?class=1&steps=3", [$"Idempotency-Key: corpus-reuse-{seed}-{i}"]), parameter: "Idempotency-Key");
        }
        string[] apiKeys = ["", "wrong", " " + context.ApiKey + " ", context.ApiKey.ToUpperInvariant(), new string('x', 1000), context.ApiKey + "\t", "%00", context.ApiKey[..^1]];
        foreach (var apiKey in apiKeys)
        {
            Add("x-api-key", Shorten(apiKey), Post(valid, [$"X-Api-Key: {apiKey}"], key: false), parameter: "X-Api-Key");
            Add("x-api-key", "on a job: " + Shorten(apiKey), Get($"/jobs/{context.SucceededJob}", [$"X-Api-Key: {apiKey}"], key: false), parameter: "X-Api-Key");
        }
        Add("x-api-key", "none", Post(valid, key: false), parameter: "X-Api-Key");
        Add("x-api-key", "valid and wrong", Post(valid, [$"X-Api-Key: {context.ApiKey}", "X-Api-Key: wrong"], key: false), parameter: "X-Api-Key");
        string[] authorizations =
        [
            $"Bearer {context.ApiKey}", "Bearer", "Bearer ", $"bearer {context.ApiKey}", "Basic dXNlcjpwYXNz", "Bearer wrong",
            "Bearer " + new string('b', 5000), "Negotiate abc", "garbage", $"Bearer  {context.ApiKey}  ", $"Bearer {context.ApiKey}, Bearer x",
        ];
        foreach (var authorization in authorizations)
        {
            Add("authorization", Shorten(authorization), Post(valid, [$"Authorization: {authorization}"], key: false), parameter: "X-Api-Key");
            Add("authorization", "on a job: " + Shorten(authorization), Get($"/jobs/{UnknownId}", [$"Authorization: {authorization}"], key: false));
        }
        Add("authorization", "valid X-Api-Key, wrong Bearer", Post(valid, ["Authorization: Bearer wrong"]));
        string[] others =
        [
            "Expect: garbage", "Range: bytes=0-1", "If-None-Match: *", "If-Modified-Since: yesterday", "Accept-Encoding: gzip;q=2, br",
            "Accept-Charset: klingon", "Origin: null", "X-Forwarded-For: ' OR 1=1", "X-Forwarded-Proto: gopher", "Cookie: " + new string('c', 20_000),
            "Referer: javascript:alert(1)", "User-Agent: " + new string('u', 8000), "Content-Encoding: gzip", "Content-Language: ../../",
            "TE: trailers", "Max-Forwards: -1", "Via: " + new string('v', 100), "Traceparent: garbage", "Traceparent: 00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff",
            "Baggage: " + string.Concat(Enumerable.Repeat("k=v,", 2000)), "X-Http-Method-Override: DELETE", "Forwarded: for=\"[::1\"",
        ];
        foreach (var header in others)
        {
            Add("header", Shorten(header), Post(valid, [header]));
            Add("header", "on a job: " + Shorten(header), Get($"/jobs/{context.SucceededJob}/images/0", [header]));
        }
        Add("header", "Content-Encoding: gzip on a JSON body", Post("/generate", ["Content-Type: application/json", "Content-Encoding: gzip"], Encoding.UTF8.GetBytes(BaseJson)));
        Add("header", "Expect: 100-continue", Post("/generate", ["Content-Type: application/json", "Expect: 100-continue"], Encoding.UTF8.GetBytes(BaseJson)));
    }

    /// <summary>Header lines no client library sends: Kestrel rejects most before the app sees them.</summary>
    private void HeaderSyntax()
    {
        byte[][] lines =
        [
            "X-No-Colon"u8.ToArray(), "Host : 127.0.0.1"u8.ToArray(), "X-Fold: a\r\n b"u8.ToArray(), ": empty-name"u8.ToArray(),
            "X-Nul: a\0b"u8.ToArray(), "X-Del\u007F: a"u8.ToArray(), [.. "X-High: "u8.ToArray(), 0xE9, 0xFF], [.. "X-"u8.ToArray(), 0xC3, 0xA9, .. ": a"u8.ToArray()],
            "X-CR: a\rb"u8.ToArray(), "X-LF: a\nb"u8.ToArray(), "X-Tab-Name\t: a"u8.ToArray(), [.. "X-Api-Key: "u8.ToArray(), 0xC3, 0xA9],
            [.. "Content-Type: application/json; charset="u8.ToArray(), 0xFF], [.. "Idempotency-Key: "u8.ToArray(), 0x80], "Prefer: wait=1\0"u8.ToArray(),
            Encoding.ASCII.GetBytes("X-Huge: " + new string('h', 40_000)), Encoding.ASCII.GetBytes("X-Long-" + new string('n', 20_000) + ": a"),
            Encoding.ASCII.GetBytes(string.Join("\r\n", Enumerable.Range(0, 150).Select(i => $"X-Many-{i}: {i}"))),
            Encoding.ASCII.GetBytes(string.Join("\r\n", Enumerable.Range(0, 90).Select(i => $"X-Wide-{i}: {new string('w', 400)}"))),
            "Host: 127.0.0.1"u8.ToArray(), "Host: "u8.ToArray(), "Host: a b"u8.ToArray(), "Host: evil.example:99999"u8.ToArray(),
            "Content-Length: -1"u8.ToArray(), "Content-Length: abc"u8.ToArray(), "Content-Length: 1, 2"u8.ToArray(), "Content-Length: +5"u8.ToArray(),
            "Content-Length: 99999999999999999999"u8.ToArray(), "Content-Length: 0x10"u8.ToArray(), "Content-Length: 5\r\nContent-Length: 6"u8.ToArray(),
            "Transfer-Encoding: gzip, chunked"u8.ToArray(), "Transfer-Encoding: chunked, gzip"u8.ToArray(), "Transfer-Encoding: identity"u8.ToArray(),
            "Transfer-Encoding: xchunked"u8.ToArray(), "Transfer-Encoding: Chunked"u8.ToArray(), "Transfer-Encoding: chunked\r\nContent-Length: 5"u8.ToArray(),
        ];
        foreach (var line in lines)
        {
            var label = Printable(line);
            Add("header-syntax", label, Raw("POST", $"/generate?{Base}", [line], body: null), transport: true);
            Add("header-syntax", "on a job: " + label, Raw("GET", $"/jobs/{context.SucceededJob}", [line], body: null), transport: true);
        }
        Add("header-syntax", "no Host", Encoding.ASCII.GetBytes($"GET /jobs/{UnknownId} HTTP/1.1\r\nConnection: close\r\nX-Api-Key: {context.ApiKey}\r\n\r\n"), transport: true);
        Add("header-syntax", "LF line ends", Encoding.ASCII.GetBytes($"GET /jobs/{UnknownId} HTTP/1.1\nHost: {context.Host}\nConnection: close\nX-Api-Key: {context.ApiKey}\n\n"), transport: true);
        Add("header-syntax", "HTTP/1.0 without Host", Encoding.ASCII.GetBytes($"GET /jobs/{UnknownId} HTTP/1.0\r\nX-Api-Key: {context.ApiKey}\r\n\r\n"), transport: true);
    }

    // ---------------------------------------------------------------- ids and routes

    private void Ids()
    {
        var ok = context.SucceededJob;
        (string Id, bool SingleSegment)[] ids =
        [
            ("a", true), (new string('A', 21), true), (new string('A', 23), true), (UnknownId, true), (ok, true), (context.OtherJob, true),
            (Flip(ok), true), (ok[..21] + "%00", true), (ok[..21] + "%2F", false), ("..", false), ("%2E%2E", false), ("..%2F..%2Fetc%2Fpasswd", false),
            ("%2F", false), (string.Concat(Enumerable.Repeat("%C3%80", 22)), true), (string.Concat(Enumerable.Repeat("%FF", 22)), true),
            ("%C0%AF" + new string('A', 20), true), ("%ED%A0%80" + new string('A', 19), true), (new string('A', 5000), true), ("null", true),
            ("-1", true), ("%27%20OR%201=1--", true), ("%3Cscript%3E", true), (new string('A', 21) + "=", true), (new string('A', 21) + "+", true),
            (string.Concat(Enumerable.Repeat("%20", 22)), true), ("%09" + new string('A', 21), true), ("%0D%0A" + new string('A', 20), true),
            (ok + "%00", true), (ok.ToLowerInvariant(), true), ("%F0%9F%92%A9" + new string('A', 20), true), (ok + ".json", true),
            ("%00", true), ("%", true), ("%zz", true), ("~", true), ("*", true), (new string('A', 22) + "%23x", true),
        ];
        foreach (var (id, single) in ids)
        {
            var parameter = single ? "id" : null;
            Add("id", $"GET {Shorten(id)}", Get($"/jobs/{id}"), parameter: parameter);
            Add("id", $"images {Shorten(id)}", Get($"/jobs/{id}/images/0"), parameter: parameter);
            Add("id", $"events {Shorten(id)}", Get($"/jobs/{id}/events"), parameter: parameter);
            Add("id", $"DELETE {Shorten(id)}", Request("DELETE", $"/jobs/{id}"), parameter: parameter);
        }
        string[] ks = ["0", "1", "-1", "abc", "1e0", "00", "+0", "%00", "0%00", "99999999999999999999", "2147483647", "2147483648", "%D9%A0", "%200", "0x0", "%", "4"];
        foreach (var k in ks)
        {
            Add("image-index", $"k={k}", Get($"/jobs/{ok}/images/{k}"), parameter: "k");
            Add("image-index", $"unknown job, k={k}", Get($"/jobs/{UnknownId}/images/{k}"), parameter: "id");
        }
        Add("image-index", "no k", Get($"/jobs/{ok}/images/"));
        Add("image-index", "extra segment", Get($"/jobs/{ok}/images/0/1"));
        string[] previews = ["0", "-1", "abc", "1001", "1000", "1", "", "1e1", "%00", "99999999999999", "+1", "%D9%A1"];
        foreach (var preview in previews)
        {
            Add("preview", $"preview={preview}", Get($"/jobs/{ok}/events?preview={preview}"), parameter: "preview");
            Add("preview", $"unknown job, preview={preview}", Get($"/jobs/{UnknownId}/events?preview={preview}"));
        }
        Add("preview", "preview twice", Get($"/jobs/{ok}/events?preview=1&preview=2"), parameter: "preview");
    }

    private void MethodsAndRoutes()
    {
        string[] methods = ["PUT", "PATCH", "OPTIONS", "TRACE", "FOO", "get", "PROPFIND", "HEAD"];
        string[] paths = ["/generate?class=1&steps=2", $"/jobs/{context.SucceededJob}", "/models", "/healthz/ready"];
        foreach (var method in methods)
        {
            foreach (var path in paths)
            {
                Add("method", $"{method} {path}", Request(method, path), head: method == "HEAD");
            }
        }
        Add("method", "GET /generate", Get("/generate?class=1"));
        Add("method", "POST /models", Request("POST", "/models"));
        Add("method", "DELETE /generate", Request("DELETE", "/generate"));
        Add("method", "POST /jobs/{id}", Request("POST", $"/jobs/{context.SucceededJob}"));
        string[] routes =
        [
            "/nope", "/generate/", "/generate/x", "/GENERATE?class=1&steps=2", "//generate?class=1&steps=2", "/./generate?class=1&steps=2",
            "/generate%2F", "/%2e%2e/%2e%2e/etc/passwd", "/..%5c..%5cwindows%5cwin.ini", "/swagger/v1/swagger.json?x=%zz", "/index.html%00",
            "/playground.js/", "/metrics?x=%zz", "/healthz/ready?%zz", "/healthz/live/../ready", "/jobs", "/jobs/", "/models/x",
            "/%00", "/%C0%AE%C0%AE/", "/" + new string('p', 6000), "/swagger/../appsettings.json", "/appsettings.json", "/RinServe.WebApi.dll",
        ];
        foreach (var route in routes)
        {
            Add("route", Shorten(route), route.Contains("generate", StringComparison.OrdinalIgnoreCase) ? Post(route) : Get(route));
        }
    }

    private void RequestLines()
    {
        string h = $"Host: {context.Host}\r\nConnection: close\r\nX-Api-Key: {context.ApiKey}\r\n\r\n";
        string[] lines =
        [
            "GET  /models HTTP/1.1", "GET /models", "GET /models HTTP/2.0", "GET /models HTTP/1.2", "GET /models HTTP/0.9", "GET /models http/1.1",
            "GET models HTTP/1.1", $"POST http://{context.Host}/generate?{Base} HTTP/1.1", "GET http://evil.example/models HTTP/1.1", "OPTIONS * HTTP/1.1",
            "GET * HTTP/1.1", $"CONNECT {context.Host} HTTP/1.1", "GET\t/models\tHTTP/1.1", "GET /models HTTP/1.1 extra", " GET /models HTTP/1.1",
            "GET /jobs/a b HTTP/1.1", "GET /models?x=\"<>\\^`{|} HTTP/1.1", "GET /models?x=\u007F HTTP/1.1", "\r\nGET /models HTTP/1.1",
            "GET /" + new string('a', 9000) + " HTTP/1.1", $"POST /generate?{Base}&x={new string('q', 9000)} HTTP/1.1", "G\u00C9T /models HTTP/1.1",
            "GET /models HTTP/1.1\r", "GET /models?%zz=%zz HTTP/1.1", "GET /%zz HTTP/1.1", "GET /models%00 HTTP/1.1", "GET /models#x HTTP/1.1",
            "GET ?class=1 HTTP/1.1", "GET //evil.example/models HTTP/1.1", "GET HTTP/1.1", "HTTP/1.1 200 OK", "GET /models HTTP/1.1/1.1",
        ];
        foreach (var line in lines)
        {
            Add("request-line", Printable(Encoding.Latin1.GetBytes(line)), Encoding.Latin1.GetBytes(line + "\r\n" + h), transport: true);
        }
        byte[][] raw =
        [
            [.. "GET /jobs/"u8.ToArray(), 0xC3, 0xA9, .. "AAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"u8.ToArray()],
            [.. "GET /models?x="u8.ToArray(), 0xFF, 0xFE, .. " HTTP/1.1\r\n"u8.ToArray()],
            [.. "GET /models?x="u8.ToArray(), 0x00, .. " HTTP/1.1\r\n"u8.ToArray()],
            [.. "GET /jobs/"u8.ToArray(), 0xC0, 0xAF, .. " HTTP/1.1\r\n"u8.ToArray()],
            [.. "POST /generate?class="u8.ToArray(), 0xD9, 0xA3, .. "&steps=2 HTTP/1.1\r\n"u8.ToArray()],
        ];
        foreach (var line in raw)
        {
            Add("request-line", Printable(line), [.. line, .. Encoding.ASCII.GetBytes(h)], transport: true);
        }
        // A TLS ClientHello, an HTTP/2 preface and plain binary sent to the cleartext HTTP/1.1 port.
        Add("request-line", "TLS ClientHello", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03, .. Enumerable.Repeat((byte)0x42, 40)], transport: true);
        Add("request-line", "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray(), transport: true);
        var binary = new byte[512];
        _random.NextBytes(binary);
        Add("request-line", "512 random bytes", binary, transport: true);
        Add("request-line", "NUL bytes", new byte[64], transport: true);
        Add("request-line", "incomplete request, then FIN", "POST /generate HTTP/1.1\r\nHost: x\r\n"u8.ToArray(), transport: true, halfClose: true);
        Add("request-line", "nothing, then FIN", [], transport: true, halfClose: true);
    }

    // ---------------------------------------------------------------- bodies: chunked, huge, slow

    private void Chunked()
    {
        var json = BaseJson;
        string[] bodies =
        [
            $"{json.Length:x}\r\n{json}\r\n0\r\n\r\n",
            $"{json.Length:x};ext=1;quoted=\"a\"\r\n{json}\r\n0\r\n\r\n",
            $"zz\r\n{json}\r\n0\r\n\r\n",
            $"-1\r\n{json}\r\n0\r\n\r\n",
            $"ffffffffffffffffffff\r\n{json}\r\n0\r\n\r\n",
            $"7fffffff\r\n{json}\r\n0\r\n\r\n",
            $"  {json.Length:x}\r\n{json}\r\n0\r\n\r\n",
            $"{json.Length:x}\r\n{json}0\r\n\r\n",
            $"{json.Length - 3:x}\r\n{json}\r\n0\r\n\r\n",
            $"{json.Length + 3:x}\r\n{json}\r\n0\r\n\r\n",
            $"{json.Length:x}\r\n{json}\r\n",
            $"{json.Length:x}\r\n{json}\r\n0\r\nX-Trailer: y\r\n\r\n",
            $"{json.Length:x}\n{json}\n0\n\n",
            string.Concat(json.Select(c => $"1\r\n{c}\r\n")) + "0\r\n\r\n",
            $"0\r\n\r\n",
            $"{json.Length:X}\r\n{json}\r\n0\r\n\r\n",
            $"0x{json.Length:x}\r\n{json}\r\n0\r\n\r\n",
            $"{json.Length:x}\r\n{json}\r\n0;last=1\r\n\r\n",
            $"{json.Length:x}\r\n{json}\r\n00000000000000000000000000000\r\n\r\n",
            $"{json.Length:x}\r\n{json}\r\n0\r\n" + new string('T', 40_000) + ": x\r\n\r\n",
        ];
        foreach (var body in bodies)
        {
            // A chunk announced longer than what follows, or no last chunk, waits for more: the client's FIN ends it.
            var unfinished = body.StartsWith("7fffffff", StringComparison.Ordinal) || body.StartsWith($"{json.Length + 3:x}\r\n", StringComparison.Ordinal)
                || body.EndsWith($"{json}\r\n", StringComparison.Ordinal);
            Add("chunked", Printable(Encoding.ASCII.GetBytes(body.Length > 60 ? body[..60] : body)) + (unfinished ? ", then FIN" : ""),
                Raw("POST", "/generate", ["Content-Type: application/json"u8.ToArray(), "Transfer-Encoding: chunked"u8.ToArray(), "Prefer: respond-async"u8.ToArray()], Encoding.ASCII.GetBytes(body)),
                transport: true, halfClose: unfinished);
        }
        var big = "{\"class\":\"" + new string('x', 100_000) + "\"}";
        Add("chunked", "100 kB in 4 kB chunks", Raw("POST", "/generate", ["Content-Type: application/json"u8.ToArray(), "Transfer-Encoding: chunked"u8.ToArray()],
            Encoding.ASCII.GetBytes(string.Concat(big.Chunk(4096).Select(c => $"{c.Length:x}\r\n{new string(c)}\r\n")) + "0\r\n\r\n")), transport: true);
        Add("chunked", "chunked GET", Raw("GET", $"/jobs/{context.SucceededJob}", ["Transfer-Encoding: chunked"u8.ToArray()], "5\r\nhello\r\n0\r\n\r\n"u8.ToArray()), transport: true);
    }

    private void Huge()
    {
        Add("huge", "Content-Length 100 MB, no body", Raw("POST", $"/generate?{Base}", ["Content-Type: application/json"u8.ToArray(), "Content-Length: 100000000"u8.ToArray()], null), transport: true);
        Add("huge", "Content-Length 9e18, no body", Raw("POST", $"/generate?{Base}", ["Content-Type: application/json"u8.ToArray(), "Content-Length: 9000000000000000000"u8.ToArray()], null), transport: true);
        var json70k = "{\"class\":\"" + new string('x', 70_000) + "\"}";
        Add("huge", "70 kB JSON", PostBytes(Encoding.ASCII.GetBytes(json70k), "application/json"), parameter: "body");
        Add("huge", "1 MB JSON", PostBytes(Encoding.ASCII.GetBytes("{\"class\":\"" + new string('x', 1_000_000) + "\"}"), "application/json"), transport: true, parameter: "body");
        Add("huge", "1 MB body on GET /jobs/{id}", Get($"/jobs/{context.SucceededJob}", body: new byte[1_000_000]), transport: true);
        Add("huge", "1 MB text/plain", PostBytes(new byte[1_000_000], "text/plain"), transport: true, parameter: "body");
        Add("huge", "64 kB minus 1 of spaces", PostBytes(Encoding.ASCII.GetBytes(BaseJson + new string(' ', 65_535 - BaseJson.Length)), "application/json"));
        Add("huge", "64 kB plus 1 of spaces", PostBytes(Encoding.ASCII.GetBytes(BaseJson + new string(' ', 65_537 - BaseJson.Length)), "application/json"), parameter: "body");
        Add("huge", "Content-Length longer than the body, then FIN", Raw("POST", "/generate", ["Content-Type: application/json"u8.ToArray(), Encoding.ASCII.GetBytes($"Content-Length: {BaseJson.Length + 50}")], Encoding.ASCII.GetBytes(BaseJson)), transport: true, halfClose: true);
        Add("huge", "Content-Length shorter than the body", Raw("POST", "/generate", ["Content-Type: application/json"u8.ToArray(), "Prefer: respond-async"u8.ToArray(), Encoding.ASCII.GetBytes($"Content-Length: {BaseJson.Length - 5}")], Encoding.ASCII.GetBytes(BaseJson)), transport: true);
        Add("huge", "Content-Length 0 with a body", Raw("POST", $"/generate?{Base}", ["Content-Type: application/json"u8.ToArray(), "Prefer: respond-async"u8.ToArray(), "Content-Length: 0"u8.ToArray()], Encoding.ASCII.GetBytes(BaseJson)), transport: true);
    }

    /// <summary>Clients that stall or trickle: Kestrel's RequestHeadersTimeout and MinRequestBodyDataRate end them.</summary>
    private void Slow()
    {
        var head = Encoding.ASCII.GetBytes($"POST /generate HTTP/1.1\r\nHost: {context.Host}\r\nConnection: close\r\nX-Api-Key: {context.ApiKey}\r\nPrefer: respond-async\r\nContent-Type: application/json\r\n");
        var json = Encoding.ASCII.GetBytes(BaseJson);
        var pause = TimeSpan.FromMilliseconds(500);
        HostileCase Slow(string label, params Segment[] segments) => new("slow", label, segments, Transport: true, Slow: true);
        _cases.Add(Slow("headers stall", new Segment(head, TimeSpan.Zero)));
        _cases.Add(Slow("headers trickle a byte every 500 ms", [.. head.Take(40).Select(b => new Segment([b], pause))]));
        _cases.Add(Slow("body stalls after 10 of 100 bytes", new Segment([.. head, .. "Content-Length: 100\r\n\r\n"u8.ToArray(), .. json.Take(10)], TimeSpan.Zero)));
        _cases.Add(Slow("body trickles a byte every 500 ms", [new Segment([.. head, .. Encoding.ASCII.GetBytes($"Content-Length: {json.Length}\r\n\r\n")], TimeSpan.Zero), .. json.Select(b => new Segment([b], pause))]));
        _cases.Add(Slow("chunked body never ends", new Segment([.. head, .. "Transfer-Encoding: chunked\r\n\r\n"u8.ToArray(), .. Encoding.ASCII.GetBytes($"{json.Length:x}\r\n"), .. json, .. "\r\n"u8.ToArray()], TimeSpan.Zero)));
        _cases.Add(Slow("Expect: 100-continue, then no body", new Segment([.. head, .. "Expect: 100-continue\r\nContent-Length: 21\r\n\r\n"u8.ToArray()], TimeSpan.Zero)));
        _cases.Add(Slow("valid body in four pieces 200 ms apart",
        [
            new Segment([.. head, .. Encoding.ASCII.GetBytes($"Content-Length: {json.Length}\r\n\r\n")], TimeSpan.Zero),
            .. json.Chunk(6).Select(piece => new Segment(piece, TimeSpan.FromMilliseconds(200))),
        ]));
        _cases.Add(Slow("connect and say nothing", new Segment([], TimeSpan.Zero)));
        _cases.Add(Slow("GET request line, then stall", new Segment(Encoding.ASCII.GetBytes($"GET /jobs/{UnknownId} HTTP/1.1\r\n"), TimeSpan.Zero)));
        _cases.Add(Slow("huge Content-Length, body trickles", [new Segment([.. head, .. "Content-Length: 60000\r\n\r\n{\"class\":\""u8.ToArray()], TimeSpan.Zero), .. Enumerable.Range(0, 30).Select(_ => new Segment("xxxxxxxxxx"u8.ToArray(), pause))]));
    }

    /// <summary>Random mixes of several inputs at once: names, values, headers and a body.</summary>
    private void RandomCombinations()
    {
        var names = ParameterValues.Keys.Concat(["colour", "Class", "STEPS", "x"]).ToArray();
        for (var i = 0; i < 150; i++)
        {
            var parts = new List<string>();
            var count = _random.Next(1, 5);
            for (var p = 0; p < count; p++)
            {
                var name = names[_random.Next(names.Length)];
                var pool = ParameterValues.TryGetValue(name, out var specific) && _random.Next(2) == 0 ? specific : QueryValues;
                parts.Add($"{name}={pool[_random.Next(pool.Length)]}");
            }
            var headers = new List<string>();
            if (_random.Next(3) == 0)
            {
                headers.Add($"Accept: {new[] { "application/json", "image/png", "*/*", "x/y" }[_random.Next(4)]}");
            }
            if (_random.Next(4) == 0)
            {
                headers.Add($"Idempotency-Key: rnd-{seed}-{_random.Next(20)}");
            }
            byte[]? body = null;
            if (_random.Next(3) == 0)
            {
                var field = names[_random.Next(names.Length)];
                var (json, _) = JsonValues[_random.Next(JsonValues.Length)];
                body = Encoding.UTF8.GetBytes($"{{\"{field}\":{json}}}");
                headers.Add("Content-Type: application/json");
            }
            Add("random", string.Join("&", parts) + (body is null ? "" : " + " + Encoding.UTF8.GetString(body)), Post("/generate?" + string.Join("&", parts), headers, body));
        }
    }

    // ---------------------------------------------------------------- request building

    private void Add(string category, string label, byte[] request, bool transport = false, string? parameter = null, bool halfClose = false, bool head = false)
    {
        // Kestrel refuses a NUL in the decoded path itself, with a bodiless 400, before routing.
        var requestLine = Encoding.Latin1.GetString(request, 0, Math.Max(0, Array.IndexOf(request, (byte)'\r')));
        var path = (requestLine.Split(' ').ElementAtOrDefault(1) ?? "").Split('?')[0];
        transport |= path.Contains("%00", StringComparison.Ordinal);
        _cases.Add(new HostileCase(category, label, [new Segment(request, TimeSpan.Zero)], transport, parameter, halfClose, Head: head));
    }

    private byte[] Post(string target, IEnumerable<string>? headers = null, byte[]? body = null, bool key = true, bool async = true, string? contentType = null)
    {
        var all = new List<string>();
        if (async)
        {
            all.Add("Prefer: respond-async");
        }
        if (contentType is not null)
        {
            all.Add($"Content-Type: {contentType}");
        }
        all.AddRange(headers ?? []);
        return Request("POST", target, all, body, key);
    }

    private byte[] PostJson(string json) => PostBytes(Encoding.UTF8.GetBytes(json), "application/json");

    private byte[] PostBytes(byte[] body, string contentType) => Post("/generate", body: body, contentType: contentType);

    private byte[] Get(string target, IEnumerable<string>? headers = null, bool key = true, byte[]? body = null) => Request("GET", target, headers, body, key);

    /// <summary>A well-formed HTTP/1.1 request (header text as Latin-1), with Host, Connection: close, the API key and Content-Length.</summary>
    private byte[] Request(string method, string target, IEnumerable<string>? headers = null, byte[]? body = null, bool key = true)
    {
        var text = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: {context.Host}\r\nConnection: close\r\n");
        if (key)
        {
            text.Append($"X-Api-Key: {context.ApiKey}\r\n");
        }
        foreach (var header in headers ?? [])
        {
            text.Append(header).Append("\r\n");
        }
        if (body is not null)
        {
            text.Append($"Content-Length: {body.Length}\r\n");
        }
        text.Append("\r\n");
        return [.. Encoding.Latin1.GetBytes(text.ToString()), .. body ?? []];
    }

    /// <summary>A request with raw header lines and no Content-Length of its own.</summary>
    private byte[] Raw(string method, string target, IEnumerable<byte[]> lines, byte[]? body)
    {
        var bytes = new List<byte>(Encoding.ASCII.GetBytes($"{method} {target} HTTP/1.1\r\nHost: {context.Host}\r\nConnection: close\r\nX-Api-Key: {context.ApiKey}\r\n"));
        foreach (var line in lines)
        {
            bytes.AddRange(line);
            bytes.AddRange("\r\n"u8.ToArray());
        }
        bytes.AddRange("\r\n"u8.ToArray());
        bytes.AddRange(body ?? []);
        return [.. bytes];
    }

    private IEnumerable<T> Sample<T>(IReadOnlyList<T> pool, int count)
    {
        var indexes = Enumerable.Range(0, pool.Count).ToArray();
        _random.Shuffle(indexes);
        return indexes.Take(Math.Min(count, pool.Count)).Order().Select(i => pool[i]);
    }

    private static string Flip(string id) => new([.. id.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c))]);

    private static string Shorten(string text)
    {
        var shown = string.Concat(text.Take(60).Select(c => char.IsControl(c) ? $"\\x{(int)c:X2}" : c.ToString()));
        return text.Length <= 60 ? shown : $"{shown}... ({text.Length} chars)";
    }

    /// <summary>Bytes as text for a label: printable ASCII as is, the rest as \xNN.</summary>
    public static string Printable(byte[] bytes)
    {
        var text = new StringBuilder();
        foreach (var b in bytes.Take(80))
        {
            text.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:X2}");
        }
        return bytes.Length > 80 ? $"{text}... ({bytes.Length} bytes)" : text.ToString();
    }
}
