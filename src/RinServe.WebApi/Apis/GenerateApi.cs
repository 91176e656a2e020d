using RinServe.WebApi.Webhooks;
using System.Globalization;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Generation;
using RinServe.WebApi.Hosting;
using RinServe.Worker;
using RinServe.WebApi.Security;

namespace RinServe.WebApi.Apis;

public static class GenerateApi
{
    public const string RateLimitPolicy = "generate";

    private const string IdempotencyKeyHeader = "Idempotency-Key";

    /// <summary>The longest Idempotency-Key accepted (a UUID is 36 characters).</summary>
    private const int MaxIdempotencyKeyLength = 255;

    /// <summary>The one image an n = 1 job answers with.</summary>
    private const int FirstImage = 0;

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
            .ProducesProblems(
                StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status409Conflict,
                StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType, StatusCodes.Status429TooManyRequests, StatusCodes.Status500InternalServerError,
                StatusCodes.Status503ServiceUnavailable);

        // The same request as a job to follow: always 202 (what Prefer: respond-async does on POST /generate), one answer
        // type, so generated clients get a typed result instead of an exception for a 202.
        app.MapPost("/jobs", SubmitJob)
            .WithTags("Jobs")
            .AddEndpointFilter<ApiKeyFilter>()
            .RequireRateLimiting(RateLimitPolicy)
            .WithName("SubmitJob")
            .WithSummary("Queue a job of images of a class")
            .WithDescription("""
                The parameters of POST /generate (query or JSON body), answered at once: 202 with the job document and
                `Location: /jobs/{id}`; follow it with GET /jobs/{id}, GET /jobs/{id}/events or a webhook. `Idempotency-Key`: a repeat
                returns the same job; other parameters with the same key: 409.
                """)
            .Produces<JobDocument>(StatusCodes.Status202Accepted)
            .ProducesProblems(
                StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status409Conflict,
                StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType, StatusCodes.Status429TooManyRequests,
                StatusCodes.Status503ServiceUnavailable);

        return api;
    }

    /// <summary>Read and check the request, queue the job, wait as the caller prefers, answer with the image or the job.</summary>
    private static Task<IResult> Generate(
        HttpContext http, GenerateValidator validator, IJobQueue queue, ModelRegistry registry, TimeProvider time,
        IOptions<SamplingOptions> sampling, IOptions<RinServeOptions> serve, ShutdownDrain shutdown, ILoggerFactory loggers, CancellationToken ct) =>
        QueueAsync(http, validator, queue, registry, time, sampling, serve, shutdown, loggers, respondAsync: false, ct);

    /// <summary>Read and check the request, queue the job, answer 202 with it.</summary>
    private static Task<IResult> SubmitJob(
        HttpContext http, GenerateValidator validator, IJobQueue queue, ModelRegistry registry, TimeProvider time,
        IOptions<SamplingOptions> sampling, IOptions<RinServeOptions> serve, ShutdownDrain shutdown, ILoggerFactory loggers, CancellationToken ct) =>
        QueueAsync(http, validator, queue, registry, time, sampling, serve, shutdown, loggers, respondAsync: true, ct);

    private static async Task<IResult> QueueAsync(
        HttpContext http, GenerateValidator validator, IJobQueue queue, ModelRegistry registry, TimeProvider time,
        IOptions<SamplingOptions> sampling, IOptions<RinServeOptions> serve, ShutdownDrain shutdown, ILoggerFactory loggers, bool respondAsync,
        CancellationToken ct)
    {
        var (request, problem) = await ReadRequestAsync(http, validator, sampling.Value, serve.Value.MaxRequestBodyBytes, ct);
        if (request is not null && respondAsync)
        {
            request = request with { Prefer = request.Prefer with { RespondAsync = true } };
        }
        if (problem is not null)
        {
            return problem;
        }
        var result = await queue.EnqueueAsync(request!.Valid.Spec, request.Claim, ct);
        if (Refusal(http.Response, result, request.Valid.Spec.Model) is { } refusal)
        {
            return refusal;
        }
        var job = result.Job!;
        var logger = loggers.CreateLogger("RinServe.Generate");
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = job.Id, ["Model"] = job.Spec.Model });
        if (result.Status == EnqueueStatus.Created)
        {
            logger.LogInformation("Queued job: class {Class}, {Count} image(s), {Steps} steps, seed {Seed}", job.Spec.ClassId, job.Spec.Count, job.Spec.Steps, job.Spec.Seed);
        }
        job = await FollowPreferenceAsync(http.Response, request.Prefer, queue, job, shutdown.StopWatching, logger, ct);
        SetJobHeaders(http.Response, job, FirstImage);
        if (request.Prefer.RespondAsync)
        {
            // Always the job, whatever its state: a fast worker may have finished it before this answer (the read-back
            // after the enqueue sees it), and a caller that asked for the job (or POST /jobs) expects one answer type.
            var document = JobDocument.From(job, registry, time);
            return TypedResults.Accepted(document.Links.Self, document);
        }
        return await AnswerAsync(http.Request, job, request.Valid.Model, queue, registry, time, ct);
    }

    /// <summary>A checked request: the job to queue, the caller's <c>Prefer</c>, and its Idempotency-Key claim (if any).</summary>
    private sealed record GenerateRequest(ValidGenerate Valid, Preference Prefer, IdempotencyClaim? Claim);

    /// <summary>Parameters (query and body), then Prefer, then Idempotency-Key, then the values: the first problem is the answer.</summary>
    private static async Task<(GenerateRequest? Request, IResult? Problem)> ReadRequestAsync(
        HttpContext http, GenerateValidator validator, SamplingOptions sampling, long maxBody, CancellationToken ct)
    {
        var (inputs, inputProblem) = await GenerateInputs.ReadAsync(http.Request, maxBody, ct);
        if (inputProblem is not null)
        {
            return (null, inputProblem);
        }
        var (prefer, preferProblem) = Preference.Parse(http.Request, sampling);
        if (preferProblem is not null)
        {
            return (null, preferProblem);
        }
        var key = http.Request.Headers[IdempotencyKeyHeader].ToString();
        var hasKey = http.Request.Headers.ContainsKey(IdempotencyKeyHeader);
        if (hasKey && (key.Length is 0 or > MaxIdempotencyKeyLength || !key.All(IsVisibleAscii)))
        {
            return (null, Problems.BadParameter(IdempotencyKeyHeader, "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID"));
        }
        if (validator.Validate(inputs!, ApiKeys.Owner(http), out var valid) is { } error)
        {
            return (null, Problems.BadParameter(error.Parameter, error.Message));
        }
        if (valid!.Spec.Webhook is { } webhook
            && await http.RequestServices.GetRequiredService<WebhookAddressPolicy>().CheckAsync(new Uri(webhook), ct) is { } refused)
        {
            return (null, Problems.BadParameter("webhook", refused));
        }
        var claim = hasKey ? new IdempotencyClaim(key, valid!.Fingerprint) : null;
        return (new GenerateRequest(valid!, prefer!, claim), null);
    }

    private static bool IsVisibleAscii(char c) => c is >= '!' and <= '~';

    /// <summary>The answer when the queue did not take the job: full or the key at its cap (429), shutting down (503), or a reused key (409).</summary>
    private static IResult? Refusal(HttpResponse response, EnqueueResult result, string model)
    {
        switch (result.Status)
        {
            case EnqueueStatus.QueueFull:
                var retryIn = Problems.SetRetryAfter(response, result.RetryAfter ?? Problems.DefaultRetryAfter);
                return Problems.Problem(StatusCodes.Status429TooManyRequests, "Queue full",
                    $"the queue of model '{model}' is full; retry after {retryIn} s");
            case EnqueueStatus.KeyFull:
                var wait = Problems.SetRetryAfter(response, result.RetryAfter ?? Problems.DefaultRetryAfter);
                return Problems.Problem(StatusCodes.Status429TooManyRequests, "Too many unfinished jobs",
                    $"this API key has as many unfinished jobs as it may have (Jobs:MaxJobsPerKey); retry after {wait} s, when some have finished");
            case EnqueueStatus.ShuttingDown:
                var retry = Problems.SetRetryAfter(response, result.RetryAfter ?? Problems.DefaultRetryAfter);
                return Problems.Problem(StatusCodes.Status503ServiceUnavailable, "Shutting down",
                    $"this instance is finishing its accepted jobs before it stops and takes no new ones; retry after {retry} s");
            case EnqueueStatus.IdempotencyConflict:
                return Problems.Problem(StatusCodes.Status409Conflict, "Idempotency-Key reused",
                    "this Idempotency-Key was already used with other parameters", IdempotencyKeyHeader,
                    new Dictionary<string, object?> { ["jobId"] = result.Job?.Id });
            default:
                return null;
        }
    }

    /// <summary><c>respond-async</c>: answer at once; otherwise wait for the job as long as asked (or the default).</summary>
    private static async Task<JobRecord> FollowPreferenceAsync(HttpResponse response, Preference prefer, IJobQueue queue, JobRecord job,
        CancellationToken stopWatching, ILogger logger, CancellationToken ct)
    {
        if (prefer.RespondAsync)
        {
            response.Headers["Preference-Applied"] = "respond-async";
            return job;
        }
        if (prefer.Wait <= TimeSpan.Zero)
        {
            return job;
        }
        if (prefer.Given)
        {
            response.Headers["Preference-Applied"] = $"wait={(int)prefer.Wait.TotalSeconds}";
        }
        return await WaitAsync(queue, job, prefer.Wait, stopWatching, logger, ct);
    }

    /// <summary>
    /// Done with n = 1: the image (the job document with <c>Accept: application/json</c>, with n &gt; 1, or when the image
    /// expired). Failed: 500; canceled: 409; still running: 202 with its Location.
    /// </summary>
    private static async Task<IResult> AnswerAsync(HttpRequest request, JobRecord job, LoadedModel model, IJobQueue queue,
        ModelRegistry registry, TimeProvider time, CancellationToken ct)
    {
        var document = JobDocument.From(job, registry, time);
        var wantsJson = request.Headers.Accept.ToString().Contains("application/json", StringComparison.OrdinalIgnoreCase);
        switch (job.State)
        {
            case JobState.Succeeded when wantsJson:
                return TypedResults.Ok(document);
            case JobState.Succeeded when job.Spec.Count == 1 && await TryGetImageAsync(queue, job.Id, ct) is { } pixels:
                var bytes = ImageEncoder.Encode(pixels, job.Spec.Format, job.Spec, FirstImage, model.Spec.ClassNames);
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
            return await queue.GetImageAsync(id, FirstImage, ct);
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
}
