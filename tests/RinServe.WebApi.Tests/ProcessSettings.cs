using System.Net;
using RinServe.Testing;

namespace RinServe.WebApi.Tests;

/// <summary>Environment for a service process on the tiny model, sized for fault tests, and the job submission they share.</summary>
internal static class ProcessSettings
{
    public static Dictionary<string, string> For(string role, RedisServer? redis, string prefix, params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string>
        {
            ["RinServe__Role"] = role,
            ["RinServe__ModelsPath"] = TestModels.Folder,
            ["Sampling__MaxSteps"] = "100000",
            ["Jobs__KeyPrefix"] = prefix.Length > 0 ? prefix : "rin:",
            ["Jobs__VisibilityTimeout"] = "00:00:03",
            ["Jobs__ReclaimInterval"] = "00:00:00.250",
            ["Jobs__RedisBreakDuration"] = "00:00:01",
            ["Jobs__RedisAttemptTimeout"] = "00:00:00.500",
            ["Workers__HeartbeatInterval"] = "00:00:00.250",
            ["Workers__ErrorBackoff"] = "00:00:00.200",
            ["Onnx__IntraOpThreads"] = "1",
            ["Onnx__WarmUp"] = "false",
            ["RateLimit__Enabled"] = "false",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__LogLevel__Default"] = "Information",
        };
        if (redis is not null)
        {
            settings["RinServe__Redis"] = redis.ConnectionString;
        }
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }
        return settings;
    }

    /// <summary>POST /generate with <c>Prefer: respond-async</c>.</summary>
    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string query)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
        request.Headers.Add("Prefer", "respond-async");
        return await client.SendAsync(request);
    }

    /// <summary>POST /generate that must be accepted; returns the job id.</summary>
    public static async Task<string> SubmitAsync(HttpClient client, string query)
    {
        var response = await PostAsync(client, query);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return response.Headers.GetValues("X-Job-Id").Single();
    }
}
