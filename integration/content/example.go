package content

import (
	"fmt"
	"strings"
)

// gitOpsExample renders the GitOps fragment that deploys the extension and
// its content and sends failing policies to a webhook. It names the library
// files and the policies that trigger the webhook, so it is generated with
// them.
func (d Definition) gitOpsExample() []byte {
	var webhook []string
	for _, p := range d.Policies {
		if p.Webhook {
			webhook = append(webhook, "      #   - "+p.Name+"\n")
		}
	}
	return fmt.Appendf(nil, `# Fleet GitOps (Fleet 4.83 and later): merge these keys into your default.yml,
# or into a fleets/*.yml file (webhook_settings then go under settings:), to
# deploy fanotify.ext, its reports and policies, and alert on failing
# policies. Copy lib/ next to that file. Fleet replaces agent_options and
# org_settings as a whole: add to the ones you have, do not swap them.
# Before Fleet 4.83 the reports: key is queries:, and policies name their
# webhook by ID (failing_policies_webhook.policy_ids, from fleetctl get
# policies) instead of webhooks_and_tickets_enabled.
# %s
reports:
  - path: ./%s
policies:
  - path: ./%s
agent_options:
  # fleetd downloads the TUF target extensions/fanotify (the binary
  # fanotify.ext) and writes osqueryd's extensions.load itself.
  extensions:
    fanotify:
      channel: stable
      platform: linux
org_settings:
  webhook_settings:
    failing_policies_webhook:
      # Fleet POSTs the hosts failing a policy that has
      # webhooks_and_tickets_enabled: true in lib/fanotify.policies.yml:
%s      # to destination_url, once per webhook_settings.interval (24h by
      # default). fleetctl gitops reads the URL from the environment.
      enable_failing_policies_webhook: true
      destination_url: $FANOTIFY_WEBHOOK_URL
      host_batch_size: 0
`, generatedHeader, strings.TrimPrefix(GitOpsQueriesFile, "fleet/"), strings.TrimPrefix(GitOpsPoliciesFile, "fleet/"),
		strings.Join(webhook, ""))
}
