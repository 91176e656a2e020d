using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using RinServe.Jobs;

namespace RinServe.WebApi.Hosting;

/// <summary>
/// Turns exceptions into problem details: a malformed request (BadHttpRequestException, e.g. an
/// oversized body) keeps its 4xx status, an unreachable queue is 503 with Retry-After, and only
/// real server faults are 500.
/// </summary>
public sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken ct)
    {
        int status;
        string title;
        string detail;
        switch (exception)
        {
            case BadHttpRequestException bad:
                status = bad.StatusCode;
                title = status == StatusCodes.Status413PayloadTooLarge ? "Body too large" : "Bad request";
                detail = bad.Message;
                break;
            case QueueUnavailableException down:
                status = StatusCodes.Status503ServiceUnavailable;
                title = "Queue unavailable";
                detail = "The job queue cannot be reached right now; retry later.";
                Problems.SetRetryAfter(http.Response, down.RetryAfter);
                logger.LogWarning(down, "Queue unavailable");
                break;
            case OperationCanceledException when http.RequestAborted.IsCancellationRequested:
                // The client went away; nobody reads an answer.
                return true;
            default:
                status = StatusCodes.Status500InternalServerError;
                title = "Internal error";
                detail = "An unexpected error occurred; it has been logged.";
                logger.LogError(exception, "Unhandled exception");
                break;
        }
        http.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }
}
