using System.Net;
using System.Text;

namespace RinServe.WebApi.Tests;

/// <summary>
/// Every user mistake is a 4xx problem document naming the parameter at fault, never a 500,
/// and the service keeps serving after each.
/// </summary>
public sealed class MalformedRequestTests(InProcessService service) : IClassFixture<InProcessService>
{
    private const string Unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    private readonly HttpClient _client = service.Factory.CreateClient();

    public static TheoryData<string, string, string?, string?, string?, int, string> Cases => new()
    {
        // method, url, body, content type, extra header "Name: value", status, parameter
        { "POST", "/generate", null, null, null, 400, "class" },
        { "POST", "/generate?class=abc", null, null, null, 400, "class" },
        { "POST", "/generate?class=10", null, null, null, 400, "class" },
        { "POST", "/generate?class=-1", null, null, null, 400, "class" },
        { "POST", "/generate?class=99999999999999999999999999", null, null, null, 400, "class" },
        { "POST", "/generate?class=1&class=2", null, null, null, 400, "class" },
        { "POST", "/generate?class=1&res=64", null, null, null, 400, "res" },
        { "POST", "/generate?class=1&res=abc", null, null, null, 400, "res" },
        { "POST", "/generate?class=1&res=-16", null, null, null, 400, "res" },
        { "POST", "/generate?class=1&model=nope", null, null, null, 400, "model" },
        { "POST", "/generate?class=1&steps=0", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&steps=20001", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&steps=abc", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&steps=1e3", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&steps=99999999999999999999999", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&sampler=euler", null, null, null, 400, "sampler" },
        { "POST", "/generate?class=1&schedule=quadratic", null, null, null, 400, "schedule" },
        { "POST", "/generate?class=1&schedule=sigmoid@3,-3,0.9", null, null, null, 400, "schedule" },
        { "POST", "/generate?class=1&schedule=cosine@0,256.5,0.25", null, null, null, 400, "schedule" },
        { "POST", "/generate?class=1&schedule=sigmoid@-3,3,1e-308", null, null, null, 400, "schedule" },
        { "POST", "/generate?class=7%00", null, null, null, 400, "class" },
        { "POST", "/generate?class=1&steps=2%00", null, null, null, 400, "steps" },
        { "POST", "/generate?class=1&seed=3%0A", null, null, null, 400, "seed" },
        { "POST", "/generate", "{\"class\":\"\\ud800\"}", "application/json", null, 400, "class" },
        { "POST", "/generate", "{\"class\":1,\"schedule\":\"cosine\\udc00\"}", "application/json", null, 400, "schedule" },
        { "POST", "/generate", "{\"class\":1,\"model\":\"a\\ud800\\ud800b\"}", "application/json", null, 400, "model" },
        { "POST", "/generate", "{\"\\ud800\":1}", "application/json", null, 400, "body" },
        { "POST", "/generate", "{\"cl\\udfffass\":1}", "application/json", null, 400, "body" },
        { "POST", "/generate?class=1&seed=-1", null, null, null, 400, "seed" },
        { "POST", "/generate?class=1&seed=9223372036854775808", null, null, null, 400, "seed" },
        { "POST", "/generate?class=1&seed=abc", null, null, null, 400, "seed" },
        { "POST", "/generate?class=1&guidance=-1", null, null, null, 400, "guidance" },
        { "POST", "/generate?class=1&guidance=NaN", null, null, null, 400, "guidance" },
        { "POST", "/generate?class=1&guidance=1e39", null, null, null, 400, "guidance" },
        { "POST", "/generate?class=1&n=0", null, null, null, 400, "n" },
        { "POST", "/generate?class=1&n=5", null, null, null, 400, "n" },
        { "POST", "/generate?class=1&format=gif", null, null, null, 400, "format" },
        { "POST", "/generate?class=1&colour=red", null, null, null, 400, "colour" },
        // A parameter with an empty name: the problem names where it is, not an empty string.
        { "POST", "/generate?class=1&=2", null, null, null, 400, "query" },
        { "POST", "/generate?class=1&%20=2", null, null, null, 400, "query" },
        { "POST", "/generate", "{\"class\":1,\"\":2}", "application/json", null, 400, "body" },
        { "POST", "/generate", "{not json", "application/json", null, 400, "body" },
        { "POST", "/generate", "[1,2]", "application/json", null, 400, "body" },
        { "POST", "/generate", "{\"class\":1,\"steps\":true}", "application/json", null, 400, "steps" },
        { "POST", "/generate", "{\"class\":{\"id\":1}}", "application/json", null, 400, "class" },
        { "POST", "/generate", "{\"class\":1,\"colour\":\"red\"}", "application/json", null, 400, "colour" },
        { "POST", "/generate", "{\"class\":1,\"steps\":\"abc\"}", "application/json", null, 400, "steps" },
        { "POST", "/generate", "{\"class\":1,\"n\":1e400}", "application/json", null, 400, "n" },
        { "POST", "/generate", "{\"class\":1,\"seed\":[1]}", "application/json", null, 400, "seed" },
        { "POST", "/generate?class=1", "{\"class\":2}", "application/json", null, 400, "class" },
        { "POST", "/generate", "{\"class\":" + new string('[', 50) + "}", "application/json", null, 400, "body" },
        { "POST", "/generate", "class=1", "text/plain", null, 415, "body" },
        { "POST", "/generate", "{\"class\":1,\"model\":\"" + new string('x', 100_000) + "\"}", "application/json", null, 413, "body" },
        { "POST", "/generate?class=1", null, null, "Prefer: wait=abc", 400, "Prefer" },
        { "POST", "/generate?class=1", null, null, "Idempotency-Key: " + new string('k', 300), 400, "Idempotency-Key" },
        { "GET", "/jobs/short", null, null, null, 400, "id" },
        { "GET", "/jobs/" + Unknown, null, null, null, 404, "id" },
        { "GET", "/jobs/!!!!!!!!!!!!!!!!!!!!!!", null, null, null, 400, "id" },
        { "GET", "/jobs/" + Unknown + "/images/0", null, null, null, 404, "id" },
        { "GET", "/jobs/" + Unknown + "x/events", null, null, null, 400, "id" },
        { "GET", "/jobs/" + Unknown + "/events?preview=0", null, null, null, 400, "preview" },
        { "GET", "/jobs/" + Unknown + "/events?preview=abc", null, null, null, 400, "preview" },
        { "DELETE", "/jobs/" + Unknown, null, null, null, 404, "id" },
        { "DELETE", "/jobs/%20", null, null, null, 400, "id" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Malformed_request_gets_a_problem_naming_the_parameter_and_the_service_still_serves(
        string method, string url, string? body, string? contentType, string? header, int status, string parameter)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, contentType!);
        }
        if (header is not null)
        {
            var colon = header.IndexOf(':', StringComparison.Ordinal);
            request.Headers.TryAddWithoutValidation(header[..colon], header[(colon + 1)..].Trim());
        }
        var response = await _client.SendAsync(request);
        await Http.AssertProblemAsync(response, (HttpStatusCode)status, parameter);

        var healthy = await _client.PostAsync("/generate?class=1&steps=1", null);
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
    }

    [Theory]
    [InlineData(new byte[] { 0xff, 0xfe }, "class")]
    [InlineData(new byte[] { 0xed, 0xa0, 0x80 }, "class")] // a surrogate encoded in UTF-8
    [InlineData(new byte[] { 0xc3 }, "class")]
    public async Task Invalid_utf8_bytes_in_a_json_string_get_a_400_not_a_500(byte[] bad, string parameter)
    {
        var body = Encoding.UTF8.GetBytes("{\"class\":\"").Concat(bad).Concat(Encoding.UTF8.GetBytes("\"}")).ToArray();
        await AssertBodyProblemAsync(body, "application/json", HttpStatusCode.BadRequest, parameter);
        var name = Encoding.UTF8.GetBytes("{\"").Concat(bad).Concat(Encoding.UTF8.GetBytes("\":1}")).ToArray();
        await AssertBodyProblemAsync(name, "application/json", HttpStatusCode.BadRequest, "body");
    }

    [Theory]
    [InlineData("utf-16")]
    [InlineData("utf-16BE")]
    [InlineData("utf-32")]
    public async Task Json_body_is_decoded_by_its_charset(string charset)
    {
        var encoding = Encoding.GetEncoding(charset);
        using var content = new ByteArrayContent(encoding.GetBytes("{\"class\":1,\"steps\":1,\"seed\":4}"));
        content.Headers.TryAddWithoutValidation("Content-Type", $"application/json; charset={charset}");
        var response = await _client.PostAsync("/generate", content);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal("4", response.Headers.GetValues("X-Seed").Single());
    }

    [Fact]
    public async Task Json_body_in_an_unknown_charset_or_not_in_its_charset_is_refused()
    {
        await AssertBodyProblemAsync(Encoding.UTF8.GetBytes("{\"class\":1}"), "application/json; charset=klingon", HttpStatusCode.UnsupportedMediaType, "body");
        // An odd byte count cannot be UTF-16.
        await AssertBodyProblemAsync([0x7b, 0x00, 0x7d], "application/json; charset=utf-16", HttpStatusCode.BadRequest, "body");
    }

    [Theory]
    [InlineData("utf-7")]
    [InlineData("csUnicode11UTF7")]
    public async Task Json_body_in_a_charset_that_dotnet_disabled_is_refused_not_a_500(string charset)
    {
        // Encoding.GetEncoding throws NotSupportedException, not ArgumentException, for UTF-7.
        await AssertBodyProblemAsync(Encoding.UTF8.GetBytes("{\"class\":1}"), $"application/json; charset={charset}", HttpStatusCode.UnsupportedMediaType, "body");
    }

    private async Task AssertBodyProblemAsync(byte[] body, string contentType, HttpStatusCode status, string parameter)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        await Http.AssertProblemAsync(await _client.PostAsync("/generate", content), status, parameter);
        Assert.Equal(HttpStatusCode.OK, (await _client.PostAsync("/generate?class=1&steps=1", null)).StatusCode);
    }

    [Fact]
    public async Task Unknown_route_and_wrong_method_are_problem_documents()
    {
        await Http.AssertProblemAsync(await _client.GetAsync("/nope"), HttpStatusCode.NotFound, null);
        await Http.AssertProblemAsync(await _client.GetAsync("/generate"), HttpStatusCode.MethodNotAllowed, null);
    }
}
