using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Net.Http.Headers;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Generation;
using RinServe.WebApi.Hosting;
using RinServe.WebApi.Imaging;
using RinServe.WebApi.Security;

namespace RinServe.WebApi.Apis;

public static class GenerateApi
{
    public const string RateLimitPolicy = "generate";

    public static RouteGroupBuilder MapGenerateApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/generate").WithTags("Generate").AddEndpointFilter<ApiKeyFilter>();

        api.MapPost("/", Generate)
            .RequireRateLimiting(RateLimitPolicy)
            .WithName("Generate")
            .WithSummary("Generate images of a class")
            .WithDescription("""
                Parameters come in the query (`POST /generate?class=7&res=64&steps=50`) or as a JSON body with the same names.
                Waits up to `Prefer: wait=N` seconds (default Sampling:DefaultWaitSeconds). Done in time with n = 1: 200 with the image
                (with `Accept: application/json` or n > 1: 200 with the job document, which links to each image). `Prefer: respond-async`,
                or not done in time: 202 with `Location: /jobs/{id}`. `Idempotency-Key`: a repeat returns the same job; other parameters with the same key: 409.
                Every answer carries `X-Job-Id`, `X-Seed` and `X-Model`.
                """)
            .Produces(StatusCodes.Status200OK, typeof(JobDocument), "image/png", "image/jpeg", "image/webp", "application/json")
            .Produces<JobDocument>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        return api;
    }

    private static async Task<IResult> Generate(
        [AsParameters] GenerateQuery query,
        HttpContext http,
        GenerateValidator validator,
        IJobQueue queue,
        ModelRegistry registry,
        TimeProvider time,
        IOptions<SamplingOptions> sampling,
        IOptions<RinServeOptions> serve,
        ShutdownDrain shutdown,
        ILoggerFactory loggers,
        CancellationToken ct)
    {
        var (inputs, inputProblem) = await ReadInputsAsync(http.Request, serve.Value.MaxRequestBodyBytes, ct);
        if (inputProblem is not null)
        {
            return inputProblem;
        }
        var (respondAsync, wait, preferProblem) = ParsePrefer(http.Request, sampling.Value);
        if (preferProblem is not null)
        {
            return preferProblem;
        }
        IdempotencyClaim? claim = null;
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].ToString();
        if (http.Request.Headers.ContainsKey("Idempotency-Key")
            && (idempotencyKey.Length is 0 or > 255 || idempotencyKey.Any(c => c < 0x21 || c > 0x7e)))
        {
            return Problems.BadParameter("Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID");
        }
        var error = validator.Validate(inputs!, ApiKeys.Owner(http), out var valid);
        if (error is not null)
        {
            return Problems.BadParameter(error.Parameter, error.Message);
        }
        if (idempotencyKey.Length > 0)
        {
            claim = new IdempotencyClaim(idempotencyKey, valid!.Fingerprint);
        }

        var result = await queue.EnqueueAsync(valid!.Spec, claim, ct);
        switch (result.Status)
        {
            case EnqueueStatus.QueueFull:
                var retryIn = Problems.SetRetryAfter(http.Response, result.RetryAfter ?? TimeSpan.FromSeconds(1));
                return Problems.Problem(StatusCodes.Status429TooManyRequests, "Queue full",
                    $"the queue of model '{valid.Spec.Model}' is full; retry after {retryIn} s");
            case EnqueueStatus.ShuttingDown:
                var retry = Problems.SetRetryAfter(http.Response, result.RetryAfter ?? TimeSpan.FromSeconds(1));
                return Problems.Problem(StatusCodes.Status503ServiceUnavailable, "Shutting down",
                    $"this instance is finishing its accepted jobs before it stops and takes no new ones; retry after {retry} s");
            case EnqueueStatus.IdempotencyConflict:
                return Problems.Problem(StatusCodes.Status409Conflict, "Idempotency-Key reused",
                    "this Idempotency-Key was already used with other parameters", "Idempotency-Key",
                    new Dictionary<string, object?> { ["jobId"] = result.Job?.Id });
        }

        var job = result.Job!;
        var logger = loggers.CreateLogger("RinServe.Generate");
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = job.Id, ["Model"] = job.Spec.Model });
        if (result.Status == EnqueueStatus.Created)
        {
            logger.LogInformation("Queued job: class {Class}, {Count} image(s), {Steps} steps, seed {Seed}", job.Spec.ClassId, job.Spec.Count, job.Spec.Steps, job.Spec.Seed);
        }
        if (respondAsync)
        {
            http.Response.Headers["Preference-Applied"] = "respond-async";
        }
        else if (wait > TimeSpan.Zero)
        {
            if (http.Request.Headers.ContainsKey("Prefer"))
            {
                http.Response.Headers["Preference-Applied"] = $"wait={(int)wait.TotalSeconds}";
            }
            job = await WaitAsync(queue, job, wait, shutdown.StopWatching, logger, ct);
        }

        SetJobHeaders(http.Response, job, 0);
        var document = JobDocument.From(job, registry, time);
        var wantsJson = http.Request.Headers.Accept.ToString().Contains("application/json", StringComparison.OrdinalIgnoreCase);
        switch (job.State)
        {
            case JobState.Succeeded when wantsJson:
                return TypedResults.Ok(document);
            case JobState.Succeeded when job.Spec.Count == 1 && await TryGetImageAsync(queue, job.Id, ct) is { } pixels:
                var bytes = ImageEncoder.Encode(pixels, job.Spec.Format, job.Spec, 0, valid.Model.Spec.ClassNames);
                return TypedResults.File(bytes, ImageEncoder.ContentType(job.Spec.Format));
            case JobState.Succeeded:
                // Several images (or the image expired meanwhile): the document links to each.
                return TypedResults.Ok(document);
            case JobState.Failed:
                return Problems.Problem(StatusCodes.Status500InternalServerError, "Generation failed", job.Error ?? "the sampler failed",
                    extra: new Dictionary<string, object?> { ["jobId"] = job.Id });
            case JobState.Canceled:
                return Problems.Problem(StatusCodes.Status409Conflict, "Job canceled", $"job {job.Id} was canceled", "id");
            default:
                return TypedResults.Accepted(document.Links.Self, document);
        }
    }

    /// <summary>
    /// Follows the accepted job until it finishes, the wait is over, the process starts shutting down, or the queue
    /// cannot be reached. The job exists whatever happens here, so every way out returns its last known state: the
    /// caller gets 202 with its Location rather than an error that would make it submit a duplicate.
    /// </summary>
    private static async Task<JobRecord> WaitAsync(IJobQueue queue, JobRecord job, TimeSpan wait, CancellationToken stopWatching,
        ILogger logger, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct, stopWatching);
        timeout.CancelAfter(wait);
        try
        {
            await foreach (var update in queue.WatchAsync(job.Id, timeout.Token))
            {
                job = update;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // Not done in time (or shutting down): the caller gets 202 and polls.
        }
        catch (QueueUnavailableException ex)
        {
            logger.LogWarning(ex, "Queue unreachable while waiting for an accepted job; answering 202 with its Location");
        }
        return job;
    }

    /// <summary>The finished job's image; null when it expired or the store cannot be reached (the document links to it).</summary>
    private static async Task<GeneratedImage?> TryGetImageAsync(IJobQueue queue, string id, CancellationToken ct)
    {
        try
        {
            return await queue.GetImageAsync(id, 0, ct);
        }
        catch (QueueUnavailableException)
        {
            return null;
        }
    }

    internal static void SetJobHeaders(HttpResponse response, JobRecord job, int index)
    {
        response.Headers["X-Job-Id"] = job.Id;
        response.Headers["X-Seed"] = unchecked(job.Spec.Seed + (ulong)index).ToString(CultureInfo.InvariantCulture);
        response.Headers["X-Model"] = job.Spec.Model;
    }

    /// <summary>
    /// Merges query and JSON body into name → text. Rejects unknown or repeated names, wrong JSON types,
    /// junk JSON, other media types and oversized bodies, each naming what is wrong.
    /// </summary>
    private static async Task<(Dictionary<string, string>? Inputs, IResult? Problem)> ReadInputsAsync(HttpRequest request, long maxBody, CancellationToken ct)
    {
        var inputs = new Dictionary<string, string>(StringComparer.Ordinal);
        var allowed = string.Join(", ", GenerateValidator.Names);
        foreach (var (name, values) in request.Query)
        {
            if (string.IsNullOrWhiteSpace(name))
            {
                return (null, Problems.BadParameter("query", $"a query parameter has no name (as in '&=1'); allowed: {allowed}"));
            }
            var key = name.ToLowerInvariant();
            if (!GenerateValidator.Names.Contains(key))
            {
                return (null, Problems.BadParameter(name, $"unknown parameter '{Problems.Shorten(name)}'; allowed: {allowed}"));
            }
            if (values.Count != 1)
            {
                return (null, Problems.BadParameter(key, $"{key} is given {values.Count} times; give it once"));
            }
            inputs[key] = values.ToString();
        }

        var hasBody = request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);
        if (!hasBody)
        {
            return (inputs, null);
        }
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"the body must be JSON (Content-Type: application/json), not '{Problems.Shorten(request.ContentType ?? "none")}'", "body"));
        }
        if (request.ContentLength > maxBody)
        {
            return (null, TooLarge(maxBody));
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        try
        {
            while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > maxBody)
                {
                    return (null, TooLarge(maxBody));
                }
                buffer.Write(chunk, 0, read);
            }
        }
        catch (IOException ex) when (ex is not BadHttpRequestException)
        {
            // Kestrel reports a chunk size that overflows as a bare IOException ("Bad chunk size data."), not as the
            // BadHttpRequestException of its other framing errors (those keep their status in ProblemExceptionHandler).
            return (null, Problems.BadParameter("body", $"the body could not be read: {ex.Message}"));
        }

        var (json, charsetProblem) = ToUtf8(buffer.ToArray(), request.ContentType);
        if (charsetProblem is not null)
        {
            return (null, charsetProblem);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException ex)
        {
            return (null, Problems.BadParameter("body", $"the body is not valid JSON: {ex.Message}"));
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, Problems.BadParameter("body", $"the body must be a JSON object with the fields {allowed}"));
            }
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!TryText(() => property.Name, out var propertyName))
                {
                    return (null, Problems.BadParameter("body", "a field name of the body is not valid Unicode (a lone surrogate such as \\ud800, or invalid UTF-8)"));
                }
                if (string.IsNullOrWhiteSpace(propertyName))
                {
                    return (null, Problems.BadParameter("body", $"a field of the body has no name (as in {{\"\":1}}); allowed: {allowed}"));
                }
                var key = propertyName.ToLowerInvariant();
                if (!GenerateValidator.Names.Contains(key))
                {
                    return (null, Problems.BadParameter(propertyName, $"unknown field '{Problems.Shorten(propertyName)}'; allowed: {allowed}"));
                }
                if (inputs.ContainsKey(key))
                {
                    return (null, Problems.BadParameter(key, $"{key} is given twice (query and body, or twice in the body); give it once"));
                }
                switch (property.Value.ValueKind)
                {
                    case JsonValueKind.String when TryText(() => property.Value.GetString()!, out var text):
                        inputs[key] = text;
                        break;
                    case JsonValueKind.String:
                        return (null, Problems.BadParameter(key, $"{key} is not valid Unicode (a lone surrogate such as \\ud800, or invalid UTF-8)"));
                    case JsonValueKind.Number:
                        inputs[key] = property.Value.GetRawText();
                        break;
                    case JsonValueKind.Null:
                        break;
                    default:
                        return (null, Problems.BadParameter(key, $"{key} must be a number or a string, not a JSON {property.Value.ValueKind.ToString().ToLowerInvariant()}"));
                }
            }
        }
        return (inputs, null);
    }

    /// <summary>Reads a JSON string, which throws when it holds a lone surrogate escape or invalid UTF-8.</summary>
    private static bool TryText(Func<string> read, out string text)
    {
        try
        {
            text = read();
            return true;
        }
        catch (InvalidOperationException)
        {
            text = "";
            return false;
        }
    }

    /// <summary>The body as UTF-8, decoded from the Content-Type charset (UTF-8 when none is named, RFC 8259).</summary>
    private static (byte[] Json, IResult? Problem) ToUtf8(byte[] body, string? contentType)
    {
        var charset = MediaTypeHeaderValue.TryParse(contentType, out var mediaType) ? mediaType.Charset.Value?.Trim('"') : null;
        if (string.IsNullOrEmpty(charset) || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            return (body, null);
        }
        Encoding encoding;
        try
        {
            encoding = Encoding.GetEncoding(charset, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            // NotSupportedException: a charset .NET knows but has disabled (UTF-7).
            return (body, Problems.Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"unsupported charset '{Problems.Shorten(charset)}'; send the JSON as UTF-8 (or UTF-16, UTF-32)", "body"));
        }
        try
        {
            var text = encoding.GetString(body);
            return (Encoding.UTF8.GetBytes(text.StartsWith('\uFEFF') ? text[1..] : text), null);
        }
        catch (DecoderFallbackException)
        {
            return (body, Problems.BadParameter("body", $"the body is not valid {encoding.WebName}, as its Content-Type charset says"));
        }
    }

    private static ProblemHttpResult TooLarge(long maxBody) =>
        Problems.Problem(StatusCodes.Status413PayloadTooLarge, "Body too large", $"the body may be at most {maxBody} bytes", "body");

    private static (bool RespondAsync, TimeSpan Wait, IResult? Problem) ParsePrefer(HttpRequest request, SamplingOptions options)
    {
        var respondAsync = false;
        var wait = options.DefaultWaitSeconds;
        foreach (var header in request.Headers["Prefer"])
        {
            foreach (var raw in (header ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var token = raw.Split(';')[0].Trim();
                if (token.Equals("respond-async", StringComparison.OrdinalIgnoreCase))
                {
                    respondAsync = true;
                }
                else if (token.StartsWith("wait=", StringComparison.OrdinalIgnoreCase))
                {
                    if (!int.TryParse(token[5..], NumberStyles.None, CultureInfo.InvariantCulture, out wait))
                    {
                        return (false, TimeSpan.Zero, Problems.BadParameter("Prefer", $"Prefer: wait=N needs N in whole seconds (0..{options.MaxWaitSeconds}); got '{Problems.Shorten(token)}'"));
                    }
                    // RFC 7240: the server may honour less than asked.
                    wait = Math.Min(wait, options.MaxWaitSeconds);
                }
            }
        }
        return (respondAsync, respondAsync ? TimeSpan.Zero : TimeSpan.FromSeconds(wait), null);
    }

}
