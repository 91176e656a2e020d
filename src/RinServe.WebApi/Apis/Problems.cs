using System.Globalization;

namespace RinServe.WebApi;

/// <summary>RFC 7807 answers that name the parameter at fault.</summary>
public static class Problems
{
    public static ProblemHttpResult Problem(int status, string title, string detail, string? parameter = null, IDictionary<string, object?>? extra = null)
    {
        var extensions = new Dictionary<string, object?>(extra ?? new Dictionary<string, object?>());
        if (parameter is not null)
        {
            extensions["parameter"] = parameter;
            extensions["errors"] = new Dictionary<string, string[]> { [parameter] = [detail] };
        }
        return TypedResults.Problem(detail, statusCode: status, title: title, extensions: extensions);
    }

    public static ProblemHttpResult BadParameter(string parameter, string detail) =>
        Problem(StatusCodes.Status400BadRequest, $"Invalid parameter '{parameter}'", detail, parameter);

    /// <summary>Retry-After when whatever refused the request names no better time.</summary>
    public static readonly TimeSpan DefaultRetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>Sets <c>Retry-After</c> in whole seconds, at least 1; returns the value written.</summary>
    public static string SetRetryAfter(HttpResponse response, TimeSpan wait)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        response.Headers.RetryAfter = seconds;
        return seconds;
    }

    /// <summary>Documents every listed status as a problem+json answer of the endpoint (Swagger).</summary>
    public static RouteHandlerBuilder ProducesProblems(this RouteHandlerBuilder endpoint, params int[] statuses)
    {
        foreach (var status in statuses)
        {
            endpoint.ProducesProblem(status);
        }
        return endpoint;
    }

    public static ProblemHttpResult JobNotFound(string id) =>
        Problem(StatusCodes.Status404NotFound, "Job not found", $"No job '{id}': unknown, expired (results are kept for Jobs:ResultTtl), or made with another API key.", "id");
}
