using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using RinServe.WebApi.Webhooks;

namespace RinServe.WebApi.Tests;

/// <summary>Webhooks on job completion: Standard Webhooks signatures, delivery and retries, and SSRF refusals.</summary>
public sealed class WebhookTests
{
    /// <summary>The example secret of the Standard Webhooks specification.</summary>
    public const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    public static byte[] Key => WebhookSigner.KeyOf(Secret)!;

    private static RinServeFactory Service(WebhookReceiver receiver, HeldJobGate? gate = null, int maxAttempts = 4) => new(new Dictionary<string, string?>
    {
        ["Webhooks:Secret"] = Secret,
        ["Webhooks:AllowedHosts:0"] = $"127.0.0.1:{receiver.Port}",
        ["Webhooks:FirstRetryDelay"] = "00:00:00.050",
        ["Webhooks:MaxAttempts"] = maxAttempts.ToString(System.Globalization.CultureInfo.InvariantCulture),
    }, gate);

    [Fact]
    public void Signatures_match_the_standard_webhooks_example_and_verify_only_the_message_signed()
    {
        var body = "{\"test\": 2432232314}"u8.ToArray();
        const string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        var signature = WebhookSigner.Sign(Key, id, 1614265330, body);
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature);
        Assert.True(WebhookSigner.Verify(Key, id, 1614265330, body, $"v1,bm90IGl0 {signature}"));
        Assert.False(WebhookSigner.Verify(Key, id, 1614265331, body, signature));
        Assert.False(WebhookSigner.Verify(Key, "msg_other", 1614265330, body, signature));
        Assert.False(WebhookSigner.Verify(Key, id, 1614265330, "{\"test\": 2432232315}"u8.ToArray(), signature));
        Assert.Null(WebhookSigner.KeyOf("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        Assert.Null(WebhookSigner.KeyOf("whsec_c2hvcnQ=")); // 5 bytes
        Assert.Null(WebhookSigner.KeyOf("whsec_not base64!"));
    }

    [Fact]
    public async Task A_job_that_ends_is_posted_signed_to_its_webhook_and_a_failed_attempt_is_retried_under_the_same_id()
    {
        using var receiver = new WebhookReceiver { AnswerWith = n => n == 1 ? (503, null) : (204, null) };
        using var gate = new HeldJobGate(gatedClass: 9);
        await using var factory = Service(receiver, gate);
        var client = factory.CreateClient();
        var id = await ProcessSettings.SubmitAsync(client, $"class=1&steps=3&seed=5&webhook={Uri.EscapeDataString(receiver.Url)}");

        var first = await receiver.NextAsync(TimeSpan.FromSeconds(60));
        var second = await receiver.NextAsync(TimeSpan.FromSeconds(60)); // the first got a 503
        Assert.Equal($"job_{id}_succeeded", first.Id);
        Assert.Equal(first.Id, second.Id);
        Assert.True(first.Verifies(Key) && second.Verifies(Key), "a signature does not verify");
        Assert.Equal("/hook", second.Path);
        Assert.Equal("job.succeeded", second.Json.GetProperty("type").GetString());
        Assert.Equal(id, second.Json.GetProperty("data").GetProperty("id").GetString());
        Assert.Equal("succeeded", second.Json.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal(receiver.Url, (await client.GetFromJsonAsync<JsonElement>($"/jobs/{id}")).GetProperty("webhook").GetString());

        // A canceled job is told too, once its cancel is in.
        var held = await ProcessSettings.SubmitAsync(client, $"class=9&steps=30&webhook={Uri.EscapeDataString(receiver.Url)}");
        Assert.Equal(held, await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync($"/jobs/{held}")).StatusCode);
        var canceled = await receiver.NextAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(($"job_{held}_canceled", "job.canceled"), (canceled.Id, canceled.Json.GetProperty("type").GetString()));
        Assert.True(canceled.Verifies(Key));
    }

    [Fact]
    public async Task Hostile_webhook_urls_are_refused_at_submission_and_nothing_reaches_a_private_address()
    {
        using var receiver = new WebhookReceiver();
        using var trap = new ConnectionTrap();
        await using var factory = Service(receiver, maxAttempts: 2);
        var client = factory.CreateClient();
        var corpus = HostileWebhooks.Urls(trap.Port);
        Assert.True(corpus.Count >= 200, $"only {corpus.Count} hostile URLs");
        var accepted = new List<string>();
        foreach (var url in corpus)
        {
            using var response = await client.PostAsync($"/jobs?class=1&steps=1&webhook={Uri.EscapeDataString(url)}", null);
            if (response.StatusCode != HttpStatusCode.BadRequest)
            {
                accepted.Add($"{url}: {(int)response.StatusCode}");
                continue;
            }
            var problem = await response.Json();
            Assert.Equal("webhook", problem.GetProperty("parameter").GetString());
        }
        Assert.True(accepted.Count == 0, "accepted: " + string.Join("\n", accepted));

        // At delivery too, against the address dialled: a name that resolves to loopback (as if DNS changed its answer
        // after the check), and a redirect from an allowed receiver towards the trap, which is never followed.
        var sender = factory.Services.GetRequiredService<WebhookSender>();
        Assert.Equal(WebhookOutcome.Refused, await sender.DeliverAsync(new Uri($"http://localhost:{trap.Port}/"), "msg_1", "{}"u8.ToArray(), default));
        Assert.Equal(WebhookOutcome.Refused, await sender.DeliverAsync(new Uri($"http://[::ffff:127.0.0.1]:{trap.Port}/"), "msg_2", "{}"u8.ToArray(), default));
        receiver.AnswerWith = _ => (302, $"http://127.0.0.1:{trap.Port}/stolen");
        Assert.Equal(WebhookOutcome.GaveUp, await sender.DeliverAsync(new Uri(receiver.Url), "msg_3", "{}"u8.ToArray(), default));
        Assert.Equal(2, receiver.All.Count); // both attempts reached the receiver; neither went on to the trap
        Assert.Equal(0, trap.Connections);
    }

    [Fact]
    public async Task A_receiver_that_keeps_failing_gets_max_attempts_under_one_id_then_the_delivery_is_given_up()
    {
        using var receiver = new WebhookReceiver { AnswerWith = _ => (500, null) };
        await using var factory = Service(receiver, maxAttempts: 3);
        var sender = factory.Services.GetRequiredService<WebhookSender>();
        var body = "{\"type\": \"job.failed\"}"u8.ToArray();
        Assert.Equal(WebhookOutcome.GaveUp, await sender.DeliverAsync(new Uri(receiver.Url), "msg_x", body, default));
        var attempts = receiver.All.ToList();
        Assert.Equal(3, attempts.Count);
        Assert.All(attempts, a => Assert.Equal("msg_x", a.Id));
        Assert.All(attempts, a => Assert.True(a.Verifies(Key)));
        Assert.All(attempts, a => Assert.Equal(body, a.Body));
    }

    [Fact]
    public async Task Without_a_secret_a_webhook_is_a_400_and_the_allowed_list_is_exact_to_the_port()
    {
        await using (var off = new RinServeFactory(new Dictionary<string, string?>()))
        {
            var response = await off.CreateClient().PostAsync("/jobs?class=1&webhook=https%3A%2F%2Fexample.com%2Fhook", null);
            await Http.AssertProblemAsync(response, HttpStatusCode.BadRequest, "webhook");
        }
        using var receiver = new WebhookReceiver();
        await using var factory = Service(receiver);
        var policy = factory.Services.GetRequiredService<WebhookAddressPolicy>();
        Assert.Null(await policy.CheckAsync(new Uri(receiver.Url), default));
        Assert.NotNull(await policy.CheckAsync(new Uri($"http://127.0.0.1:{receiver.Port + 1}/hook"), default));
        Assert.True(WebhookAddressPolicy.IsPublic(IPAddress.Parse("93.184.215.14")));
        Assert.True(WebhookAddressPolicy.IsPublic(IPAddress.Parse("2606:4700::6810:84e5")));
    }
}

/// <summary>Callback URLs that must never be fetched: private, loopback, link-local and reserved addresses in many spellings, names that resolve to loopback, bad schemes.</summary>
public static class HostileWebhooks
{
    public static IReadOnlyList<string> Urls(int trapPort)
    {
        string[] v4 =
        [
            "127.0.0.1", "127.1.2.3", "10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254",
            "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "192.0.0.1", "192.0.2.1",
            "198.18.0.1", "198.19.255.1", "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
        ];
        var urls = new List<string>();
        foreach (var ip in v4)
        {
            var b = IPAddress.Parse(ip).GetAddressBytes();
            var n = (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
            var port = b[0] == 127 ? $":{trapPort}" : "";
            urls.Add($"http://{ip}{port}/hook");
            urls.Add($"https://{ip}/hook");
            urls.Add($"http://{n}{port}/");                                        // one decimal number
            urls.Add($"http://0x{n:x8}{port}/");                                    // one hex number
            urls.Add($"http://{string.Join('.', b.Select(x => "0" + Convert.ToString(x, 8)))}{port}/"); // octal parts
            urls.Add($"http://{string.Join('.', b.Select(x => $"0x{x:x}"))}{port}/"); // hex parts
            urls.Add($"http://[::ffff:{ip}]{port}/");                               // IPv4-mapped IPv6
            urls.Add($"http://[::ffff:{b[0] << 8 | b[1]:x}:{b[2] << 8 | b[3]:x}]{port}/");
            urls.Add($"http://[64:ff9b::{ip}]/");                                   // NAT64
            urls.Add($"http://[2002:{b[0] << 8 | b[1]:x}:{b[2] << 8 | b[3]:x}::1]/"); // 6to4
        }
        foreach (var ip6 in new[] { "::1", "::", "0:0:0:0:0:0:0:1", "fc00::1", "fd12:3456:789a::1", "fe80::1", "fec0::1", "ff02::1",
                     "2001:db8::1", "::127.0.0.1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1", "::ffff:7f00:1" })
        {
            urls.Add($"http://[{ip6}]:{trapPort}/");
        }
        foreach (var name in new[] { "localhost", "localhost.", "LOCALHOST", "LocalHost", "ip6-localhost", "ip6-loopback", Environment.MachineName, "nosuchhost.invalid" })
        {
            urls.Add($"http://{name}:{trapPort}/hook");
        }
        urls.AddRange(
        [
            $"ftp://127.0.0.1:{trapPort}/", "file:///etc/passwd", $"gopher://127.0.0.1:{trapPort}/_x", "javascript:alert(1)", "data:text/plain,hi",
            $"ws://127.0.0.1:{trapPort}/", "wss://example.com/", $"dict://127.0.0.1:{trapPort}/", "ldap://127.0.0.1/", $"//127.0.0.1:{trapPort}/x",
            $"127.0.0.1:{trapPort}", $"http:/127.0.0.1:{trapPort}/", "http://", "http://user:pass@example.com/", $"http://example.com@127.0.0.1:{trapPort}/",
            $"http://127.0.0.1:{trapPort}#@example.com/", $"http://127.0.0.1:{trapPort}\\@example.com/", "https://example.com/" + new string('a', 3000),
            $"HTTP://127.0.0.1:{trapPort}/", $"http://127.0.0.1.:{trapPort}/", $"http://127.000.000.001:{trapPort}/", $"http://[::1]:{trapPort}@example.com/",
        ]);
        return urls;
    }
}

/// <summary>A delivery's life across processes, on Redis.</summary>
public sealed class WebhookFaultTests
{
    [Fact]
    public async Task A_process_killed_while_delivering_leaves_the_webhook_to_another_which_sends_it_under_the_same_id()
    {
        await using var redis = await Testing.RedisServer.StartAsync();
        var prefix = $"hook{Guid.NewGuid():N}:";
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var receiver = new WebhookReceiver();
        // The first delivery is never answered before its sender is dead; later ones at once.
        receiver.Answer = async n =>
        {
            if (n == 1)
            {
                await killed.Task;
            }
            return (204, null);
        };
        var settings = ProcessSettings.For("all", redis, prefix, receiver.ProcessSettings(WebhookTests.Secret));
        await using var first = ServiceProcess.Start("first", settings);
        await first.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(first.Url) };
        var id = await ProcessSettings.SubmitAsync(client, $"class=1&steps=3&webhook={Uri.EscapeDataString(receiver.Url)}");

        var during = await receiver.NextAsync(TimeSpan.FromSeconds(60));
        first.Kill();
        killed.SetResult();
        await using var second = ServiceProcess.Start("second", settings);
        var after = await receiver.NextAsync(TimeSpan.FromSeconds(60)); // taken over once idle for Webhooks:ReclaimAfter (2 s)
        Assert.Equal($"job_{id}_succeeded", during.Id);
        Assert.Equal(during.Id, after.Id);
        Assert.True(during.Verifies(WebhookTests.Key) && after.Verifies(WebhookTests.Key));
        Assert.Equal(id, after.Json.GetProperty("data").GetProperty("id").GetString());
    }
}
