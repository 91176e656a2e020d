using System.ComponentModel;
using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Hosting;
using RinServe.Worker;
using RinServe.WebApi.Security;

namespace RinServe.WebApi.Apis;

public static class JobsApi
{
    public static RouteGroupBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/jobs").WithTags("Jobs").AddEndpointFilter<ApiKeyFilter>();

        api.MapGet("/{id}", GetJob)
            .WithName("GetJob")
            .WithSummary("Status of a job")
            .WithDescription("Status, queue position, progress with ETA, timestamps, seed, model, image links and error.")
            .Produces<JobDocument>(StatusCodes.Status200OK)
            .ProducesProblems(
                StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound,
                StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/{id}/images/{k}", GetImage)
            .WithName("GetJobImage")
            .WithSummary("The k-th image of a succeeded job")
            .WithDescription("Encoded in the job's format. PNGs carry seed, model, steps, sampler, schedule, guidance and class in tEXt chunks.")
            .Produces(StatusCodes.Status200OK, typeof(byte[]), "image/png", "image/jpeg", "image/webp")
            .ProducesProblems(
                StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound,
                StatusCodes.Status409Conflict, StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/{id}/events", GetEvents)
            .WithName("WatchJob")
            .WithSummary("Server-Sent Events of a job")
            .WithDescription("Events: queued (with position), started, progress, then one of succeeded, failed, canceled. " +
                "Each carries the job document. A late subscriber first gets the current state. " +
                "With `?preview=k`, progress events also carry `preview`: x̂0 (the current estimate of the job's images), " +
                "each area-averaged to at most 64 px a side and tiled in ceil(√n) columns, as a base64 PNG, every k steps (more often when another watcher of the job " +
                "asked for a smaller k). Previews start within one worker heartbeat (Workers:HeartbeatInterval) of the request; " +
                "without the parameter none are made.")
            .Produces<JobDocument>(StatusCodes.Status200OK, "text/event-stream")
            .ProducesProblems(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);

        api.MapDelete("/{id}", CancelJob)
            .WithName("CancelJob")
            .WithSummary("Cancel a job")
            .WithDescription("A queued job never runs; a running job leaves the worker at its next sampler step (the jobs beside it go on) and nothing of it is stored.")
            .Produces<JobDocument>(StatusCodes.Status200OK)
            .ProducesProblems(
                StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status409Conflict, StatusCodes.Status503ServiceUnavailable);

        return api;
    }

    /// <summary>The caller's job, or the problem to answer: 400 for a malformed id, 404 for unknown or someone else's.</summary>
    internal static async Task<(JobRecord? Job, ProblemHttpResult? Problem)> FindAsync(string id, HttpContext http, IJobQueue queue, CancellationToken ct)
    {
        if (!JobId.IsWellFormed(id))
        {
            return (null, Problems.BadParameter("id", $"job ids are {JobId.Length} characters of A-Z, a-z, 0-9, '-' and '_', as returned by POST /generate"));
        }
        var job = await queue.GetAsync(id, ct);
        // Someone else's job is reported exactly like a missing one, so ids cannot be probed.
        if (job is null || job.Spec.Owner != ApiKeys.Owner(http))
        {
            return (null, Problems.JobNotFound(id));
        }
        return (job, null);
    }

    private static async Task<Results<Ok<JobDocument>, ProblemHttpResult>> GetJob(
        string id, HttpContext http, IJobQueue queue, ModelRegistry registry, TimeProvider time, CancellationToken ct)
    {
        var (job, problem) = await FindAsync(id, http, queue, ct);
        return problem ?? (Results<Ok<JobDocument>, ProblemHttpResult>)TypedResults.Ok(JobDocument.From(job!, registry, time));
    }

    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> GetImage(
        string id, string k, HttpContext http, IJobQueue queue, ModelRegistry registry, CancellationToken ct)
    {
        var (job, problem) = await FindAsync(id, http, queue, ct);
        if (problem is not null)
        {
            return problem;
        }
        if (!int.TryParse(k, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return Problems.BadParameter("k", $"k must be an image index from 0 to {job!.Spec.Count - 1}");
        }
        if (job!.State != JobState.Succeeded)
        {
            return Problems.Problem(StatusCodes.Status409Conflict, "Job has no images",
                $"job {id} is {job.State.ToString().ToLowerInvariant()}; images exist once it succeeded (watch GET /jobs/{id}/events)", "id");
        }
        if (index >= job.ImageCount || await queue.GetImageAsync(id, index, ct) is not { } pixels)
        {
            return Problems.Problem(StatusCodes.Status404NotFound, "Image not found", $"job {id} has {job.ImageCount} image(s): k is 0..{job.ImageCount - 1}", "k");
        }
        var classes = registry.Models.FirstOrDefault(m => m.Spec.Name == job.Spec.Model)?.Spec.ClassNames ?? [];
        var bytes = ImageEncoder.Encode(pixels, job.Spec.Format, job.Spec, index, classes);
        GenerateApi.SetJobHeaders(http.Response, job, index);
        return TypedResults.File(bytes, ImageEncoder.ContentType(job.Spec.Format));
    }

    private static async Task<Results<ServerSentEventsResult<JobDocument>, ProblemHttpResult>> GetEvents(
        string id,
        [FromQuery(Name = "preview"), Description("Every how many sampler steps a progress event carries an x̂0 preview (base64 PNG, at most 64 px), 1..Sampling:MaxSteps. Omitted: no previews, and none are made.")]
        string? preview,
        HttpContext http,
        IJobQueue queue,
        ModelRegistry registry,
        TimeProvider time,
        IOptions<SamplingOptions> sampling,
        ShutdownDrain shutdown,
        CancellationToken ct)
    {
        var every = 0;
        var maxSteps = sampling.Value.MaxSteps;
        if (preview is not null
            && (!int.TryParse(preview, NumberStyles.None, CultureInfo.InvariantCulture, out every) || every < 1 || every > maxSteps))
        {
            return Problems.BadParameter("preview", $"preview must be a number of steps from 1 to {maxSteps}: progress events then carry an x̂0 preview every that many steps, e.g. preview=5");
        }
        var (job, problem) = await FindAsync(id, http, queue, ct);
        if (problem is not null)
        {
            return problem;
        }
        if (every > 0 && !job!.IsTerminal)
        {
            await queue.RequestPreviewsAsync(job.Id, every, ct);
        }
        // On shutdown the stream just ends: EventSource clients reconnect (through the load balancer, to an instance that stays).
        return TypedResults.ServerSentEvents(Events(job!.Id, every > 0, queue, registry, time, ct).EndWhen(shutdown.StopWatching));
    }

    private static async IAsyncEnumerable<SseItem<JobDocument>> Events(
        string id, bool previews, IJobQueue queue, ModelRegistry registry, TimeProvider time, [EnumeratorCancellation] CancellationToken ct)
    {
        JobState? previous = null;
        var sentPreviewStep = 0;
        await foreach (var job in queue.WatchAsync(id, ct))
        {
            var type = job.State switch
            {
                JobState.Queued => "queued",
                JobState.Running => previous == JobState.Running ? "progress" : "started",
                _ => job.State.ToString().ToLowerInvariant(),
            };
            previous = job.State;
            var document = JobDocument.From(job, registry, time);
            // The preview is read only when the job says a new one is there, and encoded only for watchers who asked;
            // it rides on progress events only (as documented), also when a late watcher's first event finds one ready.
            if (previews && type == "progress" && job.PreviewStep != sentPreviewStep
                && await queue.GetPreviewAsync(id, ct) is { } preview && preview.Step != sentPreviewStep)
            {
                sentPreviewStep = preview.Step;
                document = document with { Preview = JobPreviewDocument.From(preview) };
            }
            yield return new SseItem<JobDocument>(document, type);
        }
    }

    private static async Task<Results<Ok<JobDocument>, ProblemHttpResult>> CancelJob(
        string id, HttpContext http, IJobQueue queue, ModelRegistry registry, TimeProvider time, CancellationToken ct)
    {
        var (job, problem) = await FindAsync(id, http, queue, ct);
        if (problem is not null)
        {
            return problem;
        }
        if (job!.State is JobState.Succeeded or JobState.Failed)
        {
            return Problems.Problem(StatusCodes.Status409Conflict, "Job already finished",
                $"job {id} already {job.State.ToString().ToLowerInvariant()}; only queued or running jobs can be canceled", "id");
        }
        var canceled = await queue.CancelAsync(id, ct);
        if (canceled is null)
        {
            return Problems.JobNotFound(id);
        }
        if (canceled.State != JobState.Canceled)
        {
            return Problems.Problem(StatusCodes.Status409Conflict, "Job already finished",
                $"job {id} {canceled.State.ToString().ToLowerInvariant()} before it could be canceled", "id");
        }
        return TypedResults.Ok(JobDocument.From(canceled, registry, time));
    }
}
