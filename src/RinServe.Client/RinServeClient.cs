using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace RinServe.Client;

/// <summary>One Server-Sent Event of a job: its type (queued, started, progress, succeeded, failed, canceled) and the job then.</summary>
public sealed record JobEvent(string Type, JobDocument Job)
{
    /// <summary>True for the event that ends the stream.</summary>
    public bool IsTerminal => Type is "succeeded" or "failed" or "canceled";
}

/// <summary>What OpenAPI 3.0 cannot describe, written by hand beside the generated client.</summary>
public partial class RinServeClient
{
    /// <summary>
    /// GET /jobs/{id}/events as events: the job's current state first, then every change, ending after a terminal event.
    /// <paramref name="preview"/> asks for an x̂0 preview every k steps (<see cref="JobDocument.Preview"/>).
    /// Errors come as <see cref="RinServeApiException{ProblemDetails}"/>, as from the generated calls.
    /// </summary>
    public virtual async IAsyncEnumerable<JobEvent> WatchJobAsync(
        string id, int? preview = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        var path = $"jobs/{Uri.EscapeDataString(id)}/events" + (preview is { } k ? $"?preview={k}" : "");
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await _httpClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            var headers = response.Headers.Concat(response.Content.Headers).ToDictionary(h => h.Key, h => h.Value);
            ProblemDetails? problem = null;
            try
            {
                problem = JsonSerializer.Deserialize<ProblemDetails>(text, JsonSerializerSettings);
            }
            catch (JsonException)
            {
            }
            throw new RinServeApiException<ProblemDetails>(problem?.Title ?? $"HTTP {(int)response.StatusCode}", (int)response.StatusCode, text, headers, problem, null);
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), Encoding.UTF8);
        string? type = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    var job = JsonSerializer.Deserialize<JobDocument>(data.ToString(), JsonSerializerSettings)!;
                    var evt = new JobEvent(type ?? "message", job);
                    yield return evt;
                    if (evt.IsTerminal)
                    {
                        yield break;
                    }
                }
                (type, data) = (null, data.Clear());
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                type = line["event:".Length..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Append(line["data:".Length..].TrimStart());
            }
        }
    }

    /// <summary>Follows a job's events to its end and returns it as it ended (succeeded, failed or canceled).</summary>
    public virtual async Task<JobDocument> WaitForJobAsync(string id, CancellationToken cancellationToken = default)
    {
        JobDocument? last = null;
        await foreach (var evt in WatchJobAsync(id, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            last = evt.Job;
        }
        return last ?? throw new InvalidOperationException($"the event stream of job {id} ended without a terminal event");
    }
}

public partial class ProblemDetails
{
    /// <summary>The parameter at fault (RinServe's <c>parameter</c> extension), when the problem names one.</summary>
    public string? Parameter => AdditionalProperties.TryGetValue("parameter", out var value) ? value?.ToString() : null;
}
