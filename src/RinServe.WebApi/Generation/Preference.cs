using System.Globalization;
using RinServe.WebApi.Hosting;
using RinServe.Diffusion;

namespace RinServe.WebApi.Generation;

/// <summary>
/// The <c>Prefer</c> header of POST /generate (RFC 7240): <c>respond-async</c> answers 202 at once; <c>wait=N</c>
/// waits up to N seconds for the image (at most Sampling:MaxWaitSeconds; default Sampling:DefaultWaitSeconds).
/// </summary>
/// <param name="RespondAsync">respond-async was asked for: no wait.</param>
/// <param name="Wait">How long to wait for the job before answering 202.</param>
/// <param name="Given">The request carried a Prefer header, so the wait applied is echoed in Preference-Applied.</param>
public sealed record Preference(bool RespondAsync, TimeSpan Wait, bool Given)
{
    public const string Header = "Prefer";
    private const string WaitToken = "wait=";

    public static (Preference? Preference, IResult? Problem) Parse(HttpRequest request, SamplingOptions options)
    {
        var respondAsync = false;
        var wait = options.DefaultWaitSeconds;
        foreach (var header in request.Headers[Header])
        {
            foreach (var raw in (header ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var token = raw.Split(';')[0].Trim();
                if (token.Equals("respond-async", StringComparison.OrdinalIgnoreCase))
                {
                    respondAsync = true;
                }
                else if (token.StartsWith(WaitToken, StringComparison.OrdinalIgnoreCase))
                {
                    if (!int.TryParse(token[WaitToken.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out wait))
                    {
                        return (null, Problems.BadParameter(Header, $"Prefer: wait=N needs N in whole seconds (0..{options.MaxWaitSeconds}); got '{UserText.Shorten(token)}'"));
                    }
                    // RFC 7240: the server may honour less than asked.
                    wait = Math.Min(wait, options.MaxWaitSeconds);
                }
            }
        }
        var given = request.Headers.ContainsKey(Header);
        return (new Preference(respondAsync, respondAsync ? TimeSpan.Zero : TimeSpan.FromSeconds(wait), given), null);
    }
}
